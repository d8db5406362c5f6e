"""Skeletons: layouts (joints, limbs, left/right pairs), pose readers for every source format, and lifting
SMPL / MANO parameters to joints with the licensed model files."""

"""Skeletons: layouts (joints, limbs, left/right pairs), conversion between layouts, pose readers for every source
format, pose estimation from raw video (MediaPipe BlazePose, offline), and lifting SMPL / MANO parameters to joints
with the licensed model files."""

"""Stored arrays -> model inputs: skeleton coordinates, heatmaps, DINO features, and their spatial and
temporal augmentations (pure torch; random draws from the caller's generator)."""

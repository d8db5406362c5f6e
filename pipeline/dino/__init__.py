"""Frozen DINOv2 (transformers): locating the weights, batches of frames across sequences, embedding them."""

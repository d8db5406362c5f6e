"""Networks, losses, augmentations and metrics of the alignment methods (pure computation, no file I/O)."""

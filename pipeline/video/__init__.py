"""Video I/O: frames and timestamps from video files or image folders, resampled to the dataset timeline."""

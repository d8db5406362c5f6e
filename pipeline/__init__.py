"""Plumbing of the video-alignment pipeline: CLI, manifest, params, artifact store, video I/O, skeleton
layouts and the parallel runner. Heavy libraries (torch, transformers, zarr) are imported lazily."""

__version__ = "0.1.0"

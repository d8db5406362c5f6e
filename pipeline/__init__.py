"""The data side of the project: everything that reads raw data and writes the cached artifact stores.

Top-level modules are the plumbing every stage shares (CLI, stage context, manifest, params, artifact
store, checkpoint files, sequence index, parallel runner); each subpackage is one kind of data:
`datasets` (raw dataset layouts -> index rows, and the generated sample), `video` (decoding on the
dataset timeline), `skeletons` (layouts, pose readers, SMPL/MANO lifting), `dino` (frozen DINOv2) and
`heatmaps` (joint/limb rasterisers). Nothing here imports `model` or `stages` (the CLI dispatches to
`stages` lazily). Heavy libraries (torch, transformers, zarr) are imported lazily.
"""

__version__ = "0.1.0"

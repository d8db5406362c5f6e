"""Learning on cached arrays: the alignment methods, their inputs, building blocks, losses and evaluation.

Top-level modules are the method contract and the training loop (`method`, `registry`, `trainer`, `batch`,
`buckets`, `embedder`); subpackages: `methods` (MASA, LA2DS, CASA, VASOT, early/late fusion), `inputs`
(stored arrays -> model inputs, and their augmentations), `blocks` (layers and solvers shared by methods),
`losses`, and `metrics` (the evaluation protocol, baselines, robustness, published numbers). Pure
computation on arrays and tensors: no file I/O (stages read and write). `model` may import `pipeline`
(skeleton layouts, the torch heatmap rasteriser), never `stages`.
"""

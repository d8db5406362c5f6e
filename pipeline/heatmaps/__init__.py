"""Joint and limb heatmaps on a per-sequence crop grid (DESIGN.md Sec. 3): the NumPy rasteriser of the
`heatmaps` stage (`raster`, its compiled loops in `kernels`) and its torch twin for the training device
(`raster_torch`). `render` and `crop_box` are the stable public names."""

from pipeline.heatmaps.raster import crop_box, render

__all__ = ["crop_box", "render"]

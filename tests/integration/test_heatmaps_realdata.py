"""Heatmaps of every real Penn Action sequence: they render, hold no NaN, and peak on the labelled pixels."""

import numpy as np
import pytest

from pipeline.datasets.penn_action import read_labels
from pipeline.heatmaps.raster import crop_box, render
from pipeline.skeletons.layouts import get_layout

SIZE, SIGMA = 30, 1.0


@pytest.mark.realdata
@pytest.mark.slow
def test_every_penn_action_sequence_renders_with_peaks_on_the_labels(shared_data):
    files = sorted((shared_data / "penn_action" / "labels").glob("*.mat"))
    assert len(files) == 2150
    layout = get_layout("penn13")
    n_checked = 0
    for path in files:
        lab = read_labels(path)
        joints = np.stack([lab.x, lab.y, lab.visibility.astype(np.float64)], axis=-1)
        box = crop_box(joints, pad=0.1, square=True, fallback=(0, 0, lab.width, lab.height))
        maps = render(joints, layout.limbs, box, SIZE, SIGMA)
        assert maps.shape == (len(joints), layout.n_channels, SIZE, SIZE), path
        assert np.isfinite(maps).all(), path
        confident = joints[..., 2] > 0
        assert not maps[:, : layout.n_joints][~confident].any(), path
        # the brightest cell of each confident joint's map, back in pixels, is within half a cell of the label
        peak = maps[:, : layout.n_joints].reshape(len(joints), layout.n_joints, -1).argmax(axis=-1)
        rows, cols = np.divmod(peak, SIZE)
        cell_w, cell_h = (box[2] - box[0]) / SIZE, (box[3] - box[1]) / SIZE
        x = box[0] + (cols + 0.5) * cell_w
        y = box[1] + (rows + 0.5) * cell_h
        assert (np.abs(x - lab.x)[confident] <= 0.5 * cell_w + 1e-6).all(), path
        assert (np.abs(y - lab.y)[confident] <= 0.5 * cell_h + 1e-6).all(), path
        n_checked += int(confident.sum())
    assert n_checked > 1_000_000

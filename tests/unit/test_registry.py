"""The method registry and the plug-in contract every registered method fulfils."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.batch import collate
from model.method import AlignmentMethod, InputSpec, Progress
from model.registry import get_method, method_names
from tests.tiny_models import tiny_params


def test_unknown_method_is_a_clear_error():
    with pytest.raises(KeyError, match="registered"):
        get_method("nope")


@pytest.mark.parametrize("name", method_names())
def test_each_method_declares_inputs_builds_trains_and_embeds(name):
    cls = get_method(name)
    assert issubclass(cls, AlignmentMethod)
    params = tiny_params(name)
    inputs = cls.inputs(params)
    assert all(artifact in ("keypoints", "dino", "heatmaps") for artifact, _ in inputs)
    rng = np.random.default_rng(0)
    arrays = {
        "joints_2d": lambda T: np.concatenate([rng.normal(50, 9, (T, 13, 2)), np.ones((T, 13, 1))], -1),
        "joints_3d": lambda T: rng.normal(0, 1, (T, 13, 3)),
        "feature": lambda T: rng.normal(0, 1, (T, 20)).astype(np.float16),
        "heatmap": lambda T: rng.random((T, 27, 30, 30)).astype(np.float16),
    }
    spec = InputSpec({"joints_2d": (13, 3), "joints_3d": (13, 3), "feature": (20,), "heatmap": (27, 30, 30)}, "penn13")
    torch.manual_seed(0)
    model = cls.build(params, spec)
    items = [{n: arrays[n](T) for _, n in inputs} for T in (9, 14, 6)]
    model.prepare(items)  # the contract: the trainer prepares a method with every training sequence first
    batch = collate(items, (), np.arange(len(items)))
    loss, scalars = model.loss(batch, torch.Generator().manual_seed(0), Progress(epoch=2, step=0, epochs=3))
    loss.backward()
    assert torch.isfinite(loss) and all(np.isfinite(v) for v in scalars.values())
    model.eval()
    with torch.no_grad():
        emb = model.embed(batch)
    assert emb.shape[:2] == (3, 14) and torch.isfinite(emb).all()


def test_input_sizes_come_from_the_spec_not_constants():
    spec = InputSpec({"joints_2d": (21, 3)}, "mano21")
    model = get_method("masa").build(tiny_params("masa"), spec)
    assert model.frame_mlp[0].in_features == 21 * 3
    with pytest.raises(ValueError, match="joints"):
        get_method("masa").build(tiny_params("masa"), InputSpec({"joints_2d": (13, 3)}, "mano21"))
    la2ds = get_method("la2ds").build(tiny_params("la2ds"), InputSpec({"heatmap": (36, 20, 20)}, "coco17"))
    assert la2ds.encoder.embed.in_features == 36 * 10 * 10  # coco17: 17 joints + 19 limbs, 20 x 20 cells
    with pytest.raises(ValueError, match="heatmap frames"):
        get_method("la2ds").build(tiny_params("la2ds"), InputSpec({"heatmap": (27, 30, 30)}, "coco17"))

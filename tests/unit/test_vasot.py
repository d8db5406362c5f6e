"""VASOT: its losses (pure) and the method module (needs the trainer's `model.method` interface)."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from model.losses import vasot as vl
from tests.repo_params import repo_params

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _one_thread():
    """Small problems: one intra-op thread avoids OpenMP contention on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_partner_rows_pair_within_activity_and_alone_with_itself():
    assert vl.partner_rows(["a", "b", "a", "c", "a"]) == [2, 1, 4, 3, 0]


def test_alignment_loss_prefers_embeddings_that_follow_the_plan():
    generator = torch.Generator().manual_seed(0)
    z = F.normalize(torch.randn(1, 6, 16, generator=generator), dim=2)
    mask = torch.ones(1, 6, dtype=torch.bool)
    plan = torch.eye(6)[None] / 6
    matched = vl.ot_alignment_loss(z, mask, z, mask, plan, temperature=0.1)
    shuffled = vl.ot_alignment_loss(z, mask, z[:, torch.randperm(6, generator=generator)], mask, plan, 0.1)
    constant = F.normalize(torch.ones(1, 6, 16), dim=2)
    collapsed = vl.ot_alignment_loss(constant, mask, constant, mask, plan, temperature=0.1)
    assert matched < shuffled
    assert matched < collapsed
    assert collapsed.item() == pytest.approx(np.log(6), rel=1e-5), "a constant embedding earns no credit"


def test_alignment_loss_ignores_padding():
    generator = torch.Generator().manual_seed(1)
    z_a = F.normalize(torch.randn(1, 5, 8, generator=generator), dim=2)
    z_b = F.normalize(torch.randn(1, 4, 8, generator=generator), dim=2)
    plan = torch.rand(1, 5, 4, generator=generator)
    mask_a, mask_b = torch.ones(1, 5, dtype=torch.bool), torch.ones(1, 4, dtype=torch.bool)
    alone = vl.ot_alignment_loss(z_a, mask_a, z_b, mask_b, plan, 0.1)
    pad = lambda x, n: torch.cat([x, torch.full((1, n, *x.shape[2:]), 9.0)], 1)  # noqa: E731
    padded_plan = torch.zeros(1, 7, 7)
    padded_plan[:, :5, :4] = plan
    mask_pa, mask_pb = torch.arange(7)[None] < 5, torch.arange(7)[None] < 4
    padded = vl.ot_alignment_loss(pad(z_a, 2), mask_pa, pad(z_b, 3), mask_pb, padded_plan, 0.1)
    torch.testing.assert_close(padded, alone)


def test_transfer_codes_and_prototype_loss():
    plan = torch.tensor([[[0.3, 0.0], [0.1, 0.6]]])
    codes = torch.tensor([[[0.5, 0.0], [0.0, 0.5]]])
    carried = vl.transfer_codes(plan, codes)
    torch.testing.assert_close(carried, torch.tensor([[[1.0, 0.0], [1 / 7, 6 / 7]]]))
    mask = torch.ones(1, 2, dtype=torch.bool)
    right = vl.prototype_loss(torch.tensor([[[5.0, -5.0], [-5.0, 5.0]]]), carried, mask)
    wrong = vl.prototype_loss(torch.tensor([[[-5.0, 5.0], [5.0, -5.0]]]), carried, mask)
    assert right < wrong


# ---------------------------------------------------------------------------------------- the method
@pytest.fixture
def method():
    return pytest.importorskip("model.method", reason="needs the trainer's method interface (branch train)")


def _sequences(lengths, seed=0):
    rng = np.random.default_rng(seed)
    items = []
    for n in lengths:
        joints = rng.uniform(20, 140, size=(n, 13, 3)).astype(np.float32)
        joints[..., 2] = 1.0
        items.append({"joints_2d": joints})
    return items


def _model(method, **overrides):
    from model.methods.vasot import Vasot, VasotParams

    torch.manual_seed(0)
    params = repo_params("vasot", VasotParams, d_model=32, mlp_hidden=32, proj_hidden=32, proj_dim=16, layers=1, n_prototypes=4,
                         n_outer=3, n_inner=10, **overrides)
    return Vasot.build(params, method.InputSpec({"joints_2d": (13, 3)}, "penn13"))


def test_loss_is_finite_and_reaches_encoder_and_prototypes(method):
    from model.batch import collate

    model = _model(method)
    batch = collate(_sequences([20, 26, 17]), ["squat", "squat", "serve"])
    loss, scalars = model.loss(batch, torch.Generator().manual_seed(0), method.Progress(0, 0))
    loss.backward()
    assert torch.isfinite(loss)
    assert set(scalars) == {"align", "paired", "segment"}
    assert scalars["paired"] == pytest.approx(2 / 3)
    assert model.frame_mlp[0].weight.grad.abs().sum() > 0
    assert model.prototypes.grad.abs().sum() > 0


def test_loss_under_autocast_keeps_the_transport_in_float32(method):
    from model.batch import collate

    model = _model(method)
    batch = collate(_sequences([16, 19]), ["a", "a"])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, scalars = model.loss(batch, torch.Generator().manual_seed(0), method.Progress(0, 0))
        labels = model.segment(batch)
    assert torch.isfinite(loss) and loss.dtype == torch.float32
    assert ((labels[0, :16] >= 0) & (labels[0, :16] < 4)).all()


def test_alignment_only_and_differentiable_plan(method):
    from model.batch import collate

    batch = collate(_sequences([15, 18]), ["a", "a"])
    single = _model(method, segment_weight=0.0)
    loss, scalars = single.loss(batch, torch.Generator().manual_seed(0), method.Progress(0, 0))
    loss.backward()
    assert "segment" not in scalars and single.prototypes.grad is None
    through = _model(method, segment_weight=0.0, differentiable_plan=True)
    loss_through, _ = through.loss(batch, torch.Generator().manual_seed(0), method.Progress(0, 0))
    assert loss_through.grad_fn is not None
    torch.testing.assert_close(loss_through, loss)


def test_embed_and_segment_ignore_padding(method):
    from model.batch import collate

    model = _model(method).eval()
    items = _sequences([12, 21])
    both = collate(items)
    alone = collate(items[:1])
    torch.testing.assert_close(model.embed(both)[0, :12], model.embed(alone)[0], atol=1e-5, rtol=1e-5)
    assert (model.embed(both)[0, 12:] == 0).all()
    labels = model.segment(both)
    assert labels.shape == (2, 21) and (labels[0, 12:] == -1).all()
    assert labels[0, :12].tolist() == model.segment(alone)[0].tolist()
    assert ((labels[1] >= 0) & (labels[1] < 4)).all()


def test_embedder_segments_match_batched_segment(method):
    from model.batch import collate
    from model.embedder import Embedder

    model = _model(method)
    items = _sequences([9, 14, 11])
    embedder = Embedder({None: model}, type(model).inputs(model.params))
    assert embedder.segments
    labels = embedder.segment_many(items[:2]) + embedder.segment_many(items[2:])
    together = model.segment(collate(items))
    assert [len(x) for x in labels] == [9, 14, 11]
    for i, x in enumerate(labels):
        assert x.tolist() == together[i, : len(x)].tolist()


def test_params_section_loads_and_round_trips_through_a_checkpoint_config(method):
    import json

    from model.methods.vasot import VasotParams
    from pipeline.params import from_dict, load_section, to_dict

    params = load_section("vasot", VasotParams, REPO / "params.yaml")
    assert params.inputs and params.n_prototypes >= 2
    relaxed = repo_params("vasot", VasotParams, reg_m=0.5, segment_reg_m=0.1)
    for p in (params, relaxed):
        assert from_dict(VasotParams, json.loads(json.dumps(to_dict(p))), where="config") == p


def test_segmentation_only_trains_prototypes_and_not_the_alignment_term(method):
    from model.batch import collate

    batch = collate(_sequences([15, 18]), ["a", "a"])
    seg_only = _model(method, align_weight=0.0)
    loss, scalars = seg_only.loss(batch, torch.Generator().manual_seed(0), method.Progress(0, 0))
    loss.backward()
    assert seg_only.prototypes.grad is not None and seg_only.prototypes.grad.abs().sum() > 0
    assert loss.item() == pytest.approx(scalars["segment"], rel=1e-5)
    with pytest.raises(ValueError, match="nothing to train"):
        _model(method, align_weight=0.0, segment_weight=0.0)

"""Padding masks: padded frames never change the outputs of real frames (layers and whole models)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.batch import collate, pad_sequences
from model.blocks.attention import (
    AlternatingEncoder,
    AttentionLayer,
    MultiHeadAttention,
    SelfAttentionStack,
    cpu_bfloat16_attention,
)
from model.method import InputSpec
from model.registry import get_method
from tests.tiny_models import tiny_params


def _padded(x: torch.Tensor, extra: int, value: float = 7.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, T, D) -> (1, T + extra, D) padded with garbage, and its mask."""
    pad = torch.full((1, extra, x.shape[-1]), value)
    mask = torch.cat((torch.ones(1, x.shape[1], dtype=torch.bool), torch.zeros(1, extra, dtype=torch.bool)), 1)
    return torch.cat((x, pad), 1), mask


def test_self_attention_ignores_padding():
    torch.manual_seed(0)
    layer = SelfAttentionStack(16, 4, 2).eval()
    x = torch.randn(1, 9, 16)
    alone = layer(x, torch.ones(1, 9, dtype=torch.bool))
    padded, mask = _padded(x, 5)
    out = layer(padded, mask)
    torch.testing.assert_close(out[:, :9], alone)
    assert torch.all(out[:, 9:] == 0)


def test_cross_attention_ignores_padding_of_the_context():
    torch.manual_seed(0)
    layer = AttentionLayer(16, 2, cross=True).eval()
    q, ctx = torch.randn(1, 6, 16), torch.randn(1, 8, 16)
    ones = torch.ones(1, 6, dtype=torch.bool)
    alone = layer(q, ones, ctx, torch.ones(1, 8, dtype=torch.bool))
    ctx_p, ctx_mask = _padded(ctx, 4)
    torch.testing.assert_close(layer(q, ones, ctx_p, ctx_mask), alone)


def test_alternating_encoder_pair_and_single_ignore_padding():
    torch.manual_seed(0)
    enc = AlternatingEncoder(16, 4, 4).eval()
    a, b = torch.randn(1, 7, 16), torch.randn(1, 5, 16)
    a_alone, b_alone = enc(a, torch.ones(1, 7, dtype=torch.bool), b, torch.ones(1, 5, dtype=torch.bool))
    a_p, ma = _padded(a, 3)
    b_p, mb = _padded(b, 6)
    a_out, b_out = enc(a_p, ma, b_p, mb)
    torch.testing.assert_close(a_out[:, :7], a_alone)
    torch.testing.assert_close(b_out[:, :5], b_alone)
    torch.testing.assert_close(enc.single(a_p, ma)[:, :7], enc.single(a, torch.ones(1, 7, dtype=torch.bool)))


def test_pad_sequences_masks_real_frames_first():
    padded, mask = pad_sequences([torch.ones(3, 2), torch.ones(1, 2)])
    assert padded.shape == (2, 3, 2)
    assert mask.tolist() == [[True, True, True], [True, False, False]]


def _keypoints(n: int, rng: np.random.Generator) -> np.ndarray:
    xy = rng.normal(100, 20, (n, 13, 2))
    conf = (rng.random((n, 13, 1)) > 0.1).astype(float)
    return np.concatenate([xy, conf], -1).astype(np.float32)


@pytest.mark.parametrize("name", ["masa", "la2ds", "casa", "fusion_early", "fusion_late"])
def test_model_embeddings_do_not_depend_on_batch_padding(name):
    """A sequence embedded alone equals the same sequence embedded beside a much longer one."""
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    cls = get_method(name)
    params = tiny_params(name)
    spec = InputSpec({"joints_2d": (13, 3), "feature": (24,), "heatmap": (27, 30, 30)}, "penn13")
    model = cls.build(params, spec).eval()

    def item(n: int) -> dict:
        return {"joints_2d": _keypoints(n, rng), "feature": rng.normal(size=(n, 24)).astype(np.float16),
                "heatmap": rng.random((n, 27, 30, 30)).astype(np.float16)}

    short, long = item(6), item(17)
    names = [array for _, array in cls.inputs(params)]

    def pick(item):
        return {k: item[k] for k in names}

    with torch.no_grad():
        alone = model.embed(collate([pick(short)]))
        together = model.embed(collate([pick(short), pick(long)]))
    torch.testing.assert_close(together[0, :6], alone[0], atol=1e-5, rtol=1e-4)
    assert torch.all(together[0, 6:] == 0)


def test_cpu_autocast_runs_attention_as_bfloat16_matmuls_around_a_float32_softmax():
    torch.manual_seed(0)
    attention = MultiHeadAttention(16, 4)
    q, ctx = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])
    seen = []
    real = torch.nn.functional.scaled_dot_product_attention
    reference = attention(q, ctx, mask)
    def spy(*args, **kwargs):
        seen.append(args)
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp, torch.autocast("cpu", dtype=torch.bfloat16):
        mp.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
        out = attention(q, ctx, mask)
    assert not seen  # not PyTorch's CPU flash attention, slow in bfloat16
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), reference, atol=0.05, rtol=0.05)
    # the padded keys get no weight: changing them changes nothing
    noisy = ctx.clone()
    noisy[1, 4:] = 100.0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(attention(q, noisy, mask)[1], out[1])
    out.float().sum().backward()
    assert attention.q.weight.grad.abs().sum() > 0
    # the function itself, against PyTorch's attention in float32
    qs, ks, vs = (torch.randn(3, 2, 9, 8) for _ in range(3))
    allowed = torch.ones(3, 1, 1, 9, dtype=torch.bool)
    allowed[2, ..., 6:] = False
    expected = real(qs, ks, vs, attn_mask=allowed)
    got = cpu_bfloat16_attention(qs.bfloat16(), ks.bfloat16(), vs.bfloat16(), allowed, 0.0)
    torch.testing.assert_close(got.float(), expected, atol=0.05, rtol=0.05)


def test_cpu_autocast_keeps_pytorch_attention_where_the_scores_would_not_fit(monkeypatch):
    """Past MATH_ATTENTION_MAX_SCORES (here lowered to 71 scores) the bf16 path would hold too much memory."""
    import model.blocks.attention as attention_module

    attention = MultiHeadAttention(16, 4)
    q, ctx, mask = torch.randn(1, 3, 16), torch.randn(1, 6, 16), torch.ones(1, 6, dtype=torch.bool)
    seen = []
    real = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention",
                        lambda *a, **k: (seen.append(a), real(*a, **k))[1])
    monkeypatch.setattr(attention_module, "MATH_ATTENTION_MAX_SCORES", 71)  # B * heads * Tq * Tk = 72
    with torch.autocast("cpu", dtype=torch.bfloat16):
        attention(q, ctx, mask)
        assert len(seen) == 1
        attention(q[:, :2], ctx, mask)  # 48 scores: the matmuls
    assert len(seen) == 1

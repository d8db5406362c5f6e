"""Batched, differentiable entropic optimal transport in the log domain (torch, any device).

Shapes: B problems, N source frames, M target frames (or K prototypes). Every solver takes masks
`mask_x` (B, N) and `mask_y` (B, M), True on real frames: padded rows and columns carry no mass and
receive none, so sequences of different lengths share one batch. Marginals default to uniform over the
real frames. Inputs in half precision are solved in float32, also inside an autocast region; the returned
plan has the input's dtype.

Solvers (the iterations are unrolled, so autograd differentiates the plan w.r.t. the cost):
- `sinkhorn`: min_T <C, T> - eps H(T), T 1 = a, T^T 1 = b (POT's `ot.sinkhorn(a, b, C, eps,
  method='sinkhorn_log')`, same update order). With `reg_m` the marginal constraints become KL penalties
  reg_m KL(T 1 | a) + reg_m KL(T^T 1 | b) (Chizat et al. 2018; POT's `sinkhorn_unbalanced` with
  `reg_type='entropy'`); a pair (reg_a, reg_b) relaxes the sides differently, inf keeps a side hard.
- `fused_gromov_wasserstein`: min_T (1 - alpha) <C, T> + alpha sum_ijkl (Cx_ik - Cy_jl)^2 T_ij T_kl
  - eps H(T), by projected mirror descent (Peyre et al., ICML 2016): linearise the GW term at the current
  plan and solve the entropic linear problem with Sinkhorn (POT's `entropic_fused_gromov_wasserstein`,
  solver 'PGD'). Potentials are warm-started between outer steps, so a few inner iterations suffice.

Temporal structural prior (how `align_plan` and `assign_to_prototypes` use the solvers):
- on the linear cost, rho * |t_i - s_j|^power with t, s the normalised times of the frames (centres
  (i + 1/2) / n). power=1 is ASOT's temporal prior (Xu & Gould, "Temporally consistent unbalanced optimal
  transport for unsupervised action segmentation", CVPR 2024), which VASOT (Shah et al., 2025) builds on.
  power=2 is VAVA's Gaussian prior (Liu et al., CVPR 2022): eps KL(T || P) with P_ij ∝
  exp(-d_ij^2 / (2 sigma^2)) equals <T, eps d^2 / (2 sigma^2)> - eps H(T) + const, i.e. rho = eps / (2 sigma^2)
  on the squared distance to the diagonal;
- on the structure, ASOT's neighbourhood matrices: Cx_ik = 1 for frames within `radius` of normalised time,
  and Cy the same for the other sequence (alignment) or the identity over prototypes (segmentation), so the
  GW term rewards neighbouring frames going to neighbouring frames / the same prototype.
"""

from __future__ import annotations

import functools
import logging

import torch
from torch import Tensor

log = logging.getLogger(__name__)

_MASKED_LOGIT = -1e9  # log-kernel of padded pairs: exp() is exactly 0, and stays finite for autograd


def _without_autocast(solver):
    """Run a solver outside autocast: its matmuls would otherwise drop to bf16 inside an AMP region."""

    @functools.wraps(solver)
    def wrapped(cost: Tensor, *args, **kwargs):
        with torch.autocast(cost.device.type, enabled=False):
            return solver(cost, *args, **kwargs)

    return wrapped


def _full_mask(batch: int, n: int, device: torch.device) -> Tensor:
    return torch.ones(batch, n, dtype=torch.bool, device=device)


def _masks(cost: Tensor, mask_x: Tensor | None, mask_y: Tensor | None) -> tuple[Tensor, Tensor]:
    """Masks (B, N), (B, M) for cost (B, N, M); all-True where not given."""
    if cost.dim() != 3:
        raise ValueError(f"cost must be (B, N, M), got shape {tuple(cost.shape)}")
    batch, n, m = cost.shape
    mask_x = _full_mask(batch, n, cost.device) if mask_x is None else mask_x.bool()
    mask_y = _full_mask(batch, m, cost.device) if mask_y is None else mask_y.bool()
    if mask_x.shape != (batch, n) or mask_y.shape != (batch, m):
        raise ValueError(f"masks {tuple(mask_x.shape)}, {tuple(mask_y.shape)} do not fit cost {tuple(cost.shape)}")
    if not (mask_x.any(1).all() and mask_y.any(1).all()):
        raise ValueError("every problem needs at least one real frame on each side")
    return mask_x, mask_y


def _work_dtype(x: Tensor) -> torch.dtype:
    return torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype


def uniform_marginal(mask: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """(B, N) bool -> (B, N) weights 1 / n_real on real frames, 0 on padding."""
    weights = mask.to(dtype)
    return weights / weights.sum(1, keepdim=True)


def normalised_time(mask: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """(B, N) bool (real frames first) -> (B, N) frame centres (i + 1/2) / n_real in (0, 1); 0 on padding."""
    n_real = mask.sum(1, keepdim=True).to(dtype)
    index = torch.arange(mask.shape[1], device=mask.device, dtype=dtype)
    return torch.where(mask, (index + 0.5) / n_real, torch.zeros((), dtype=dtype, device=mask.device))


def temporal_prior(mask_x: Tensor, mask_y: Tensor, *, power: float = 1.0, dtype: torch.dtype = torch.float32) -> Tensor:
    """(B, N), (B, M) masks -> (B, N, M) |t_i - s_j|^power, the distance to the diagonal of normalised time."""
    t = normalised_time(mask_x, dtype)
    s = normalised_time(mask_y, dtype)
    return (t[:, :, None] - s[:, None, :]).abs() ** power


def neighbourhood(mask: Tensor, radius: float, dtype: torch.dtype = torch.float32) -> Tensor:
    """(B, N) mask -> (B, N, N) structure 1[|t_i - t_k| <= radius] between real frames (0 elsewhere)."""
    t = normalised_time(mask, dtype)
    close = (t[:, :, None] - t[:, None, :]).abs() <= radius
    return (close & mask[:, :, None] & mask[:, None, :]).to(dtype)


def _log_marginal(weights: Tensor | None, mask: Tensor, dtype: torch.dtype) -> Tensor:
    """Log weights (B, N), 0 on padding (those entries are never used)."""
    weights = uniform_marginal(mask, dtype) if weights is None else weights.to(dtype)
    # the smallest normal number of the dtype: a zero weight (unbalanced marginals can have them) gives a
    # very negative, finite log instead of -inf, whose gradient would be NaN
    return torch.where(mask, weights.clamp_min(1e-300 if dtype == torch.float64 else 1e-38).log(), 0.0)


def _lse(base: Tensor, potential: Tensor, out: Tensor | None) -> Tensor:
    """logsumexp_j(base[b, i, j] + potential[b, j]) -> (B, I) for base (B, I, J).

    Reduces over the contiguous last axis. With `out` (a buffer shaped like base) it works in place, which
    avoids a fresh B x I x J temporary per call (the main cost on CPU); only without autograd.
    """
    if out is None:
        return torch.logsumexp(base + potential[:, None, :], dim=2)
    torch.add(base, potential[:, None, :], out=out)
    peak = out.amax(2, keepdim=True)  # finite: padded pairs carry a finite logit
    out.sub_(peak).exp_()
    return out.sum(2).log_().add_(peak.squeeze(2))


def _sinkhorn_log(
    log_k: Tensor, log_a: Tensor, log_b: Tensor, mask_x: Tensor, mask_y: Tensor, *,
    n_iters: int, fi: tuple[float, float], u: Tensor | None = None, v: Tensor | None = None, tol: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """Scaled log-potentials u (B, N), v (B, M) with plan = exp(log_k + u + v); v is updated first, as in POT.
    fi: damping exponents of the (source, target) updates, 1 for a hard marginal."""
    fi_x, fi_y = fi
    u = torch.zeros_like(log_a) if u is None else u
    v = torch.zeros_like(log_b) if v is None else v
    log_kt = log_k.transpose(1, 2).contiguous()  # (B, M, N): both updates reduce over a contiguous axis
    tracked = torch.is_grad_enabled() and any(t.requires_grad for t in (log_k, log_a, log_b, u, v))
    buf, buf_t = (None, None) if tracked else (torch.empty_like(log_k), torch.empty_like(log_kt))
    for it in range(n_iters):
        v = torch.where(mask_y, fi_y * (log_b - _lse(log_kt, u, buf_t)), 0.0)
        u = torch.where(mask_x, fi_x * (log_a - _lse(log_k, v, buf)), 0.0)
        if tol > 0 and it % 10 == 9:
            col = (_lse(log_kt, u, buf_t) + v).exp()
            if ((col - log_b.exp()) * mask_y).abs().sum(1).max() < tol:
                break
    return u, v


def _log_kernel(cost: Tensor, epsilon: float, mask_x: Tensor, mask_y: Tensor) -> Tensor:
    valid = mask_x[:, :, None] & mask_y[:, None, :]
    return torch.where(valid, -cost / epsilon, _MASKED_LOGIT)


def _plan(log_k: Tensor, u: Tensor, v: Tensor) -> Tensor:
    return (log_k + u[:, :, None] + v[:, None, :]).exp()


RegM = float | tuple[float, float] | None


def _relaxation(epsilon: float, reg_m: RegM) -> tuple[float, float]:
    """Damping exponents reg_m / (reg_m + epsilon) of the (source, target) updates; inf or None -> 1."""
    if epsilon <= 0:
        raise ValueError(f"epsilon must be positive, got {epsilon}")
    pair = (reg_m, reg_m) if reg_m is None or isinstance(reg_m, (int, float)) else tuple(reg_m)
    if any(r is not None and r <= 0 for r in pair):
        raise ValueError(f"reg_m must be positive (or inf / None for a hard marginal), got {reg_m}")
    return tuple(1.0 if r is None or r == float("inf") else r / (r + epsilon) for r in pair)


@_without_autocast
def sinkhorn(
    cost: Tensor, *, epsilon: float, n_iters: int = 100,
    mask_x: Tensor | None = None, mask_y: Tensor | None = None,
    a: Tensor | None = None, b: Tensor | None = None, reg_m: RegM = None, tol: float = 0.0,
) -> Tensor:
    """Entropic OT plan (B, N, M) for cost (B, N, M), marginals a (B, N), b (B, M) (uniform by default).

    `n_iters` Sinkhorn iterations in the log domain (early stop once the column marginal's L1 error is below
    `tol`, checked every 10 iterations; 0 = always run `n_iters`). `reg_m`: KL marginal relaxation, one
    weight for both sides or a (source, target) pair as POT's `reg_m`, inf or None = hard marginal.
    Padded pairs get exactly zero mass.
    """
    mask_x, mask_y = _masks(cost, mask_x, mask_y)
    dtype = _work_dtype(cost)
    log_k = _log_kernel(cost.to(dtype), epsilon, mask_x, mask_y)
    u, v = _sinkhorn_log(
        log_k, _log_marginal(a, mask_x, dtype), _log_marginal(b, mask_y, dtype), mask_x, mask_y,
        n_iters=n_iters, fi=_relaxation(epsilon, reg_m), tol=tol,
    )
    return _plan(log_k, u, v).to(cost.dtype)


def gw_gradient(c_x: Tensor, c_y: Tensor, plan: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Gradient (B, N, M) of sum_ijkl (Cx_ik - Cy_jl)^2 T_ij T_kl at T = plan, for symmetric Cx (B, N, N),
    Cy (B, M, M), with the marginals a (B, N), b (B, M) in the constant term (POT's `gwggrad`):
    2 (Cx^2 a 1^T + 1 b^T Cy^2 - 2 Cx T Cy)."""
    const = (c_x**2 @ a[:, :, None]) + (c_y**2 @ b[:, :, None]).transpose(1, 2)
    return 2 * (const - 2 * c_x @ plan @ c_y.transpose(1, 2))


def fgw_objective(cost: Tensor, c_x: Tensor, c_y: Tensor, plan: Tensor, *, alpha: float) -> Tensor:
    """(B,) value (1 - alpha) <C, T> + alpha sum_ijkl (Cx_ik - Cy_jl)^2 T_ij T_kl of a plan (B, N, M)."""
    p, q = plan.sum(2), plan.sum(1)
    gw = (
        torch.einsum("bi,bik,bk->b", p, c_x**2, p)
        + torch.einsum("bj,bjl,bl->b", q, c_y**2, q)
        - 2 * (plan * (c_x @ plan @ c_y.transpose(1, 2))).sum((1, 2))
    )
    return (1 - alpha) * (cost * plan).sum((1, 2)) + alpha * gw


@_without_autocast
def fused_gromov_wasserstein(
    cost: Tensor, c_x: Tensor, c_y: Tensor, *, alpha: float, epsilon: float,
    n_outer: int = 10, n_inner: int = 50,
    mask_x: Tensor | None = None, mask_y: Tensor | None = None,
    a: Tensor | None = None, b: Tensor | None = None, reg_m: RegM = None,
    plan0: Tensor | None = None, tol: float = 0.0,
) -> Tensor:
    """Entropic fused Gromov-Wasserstein plan (B, N, M) (square loss, symmetric structures).

    cost (B, N, M): linear cost; c_x (B, N, N), c_y (B, M, M): intra-sequence structures; alpha in [0, 1]
    weighs the GW term. `n_outer` mirror-descent steps, each `n_inner` warm-started Sinkhorn iterations
    (`tol` as in `sinkhorn`). plan0 defaults to a b^T. `reg_m` relaxes the marginals of each inner problem.
    """
    mask_x, mask_y = _masks(cost, mask_x, mask_y)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    cost_dtype, dtype = cost.dtype, _work_dtype(cost)
    a = uniform_marginal(mask_x, dtype) if a is None else a.to(dtype) * mask_x
    b = uniform_marginal(mask_y, dtype) if b is None else b.to(dtype) * mask_y
    pair = (mask_x[:, :, None] & mask_y[:, None, :]).to(dtype)
    c_x = c_x.to(dtype) * (mask_x[:, :, None] & mask_x[:, None, :])
    c_y = c_y.to(dtype) * (mask_y[:, :, None] & mask_y[:, None, :])
    cost = cost.to(dtype)
    plan = a[:, :, None] * b[:, None, :] if plan0 is None else plan0.to(dtype) * pair
    log_a, log_b = _log_marginal(a, mask_x, dtype), _log_marginal(b, mask_y, dtype)
    fi = _relaxation(epsilon, reg_m)
    u = v = None
    for _ in range(n_outer):
        linear = (1 - alpha) * cost + alpha * gw_gradient(c_x, c_y, plan, a, b)
        log_k = _log_kernel(linear, epsilon, mask_x, mask_y)
        u, v = _sinkhorn_log(log_k, log_a, log_b, mask_x, mask_y, n_iters=n_inner, fi=fi, u=u, v=v, tol=tol)
        plan = _plan(log_k, u, v)
    return plan.to(cost_dtype)


def align_plan(
    cost: Tensor, *, epsilon: float, alpha: float, rho: float, radius: float, prior_power: float = 1.0,
    n_outer: int = 10, n_inner: int = 50, mask_x: Tensor | None = None, mask_y: Tensor | None = None,
    reg_m: RegM = None,
) -> Tensor:
    """Alignment plan (B, N, M) between two frame sequences with the temporal structural prior.

    cost (B, N, M): feature cost between the frames (e.g. 1 - cosine similarity). Solves fused GW with
    linear cost `cost + rho |t_i - s_j|^prior_power` and neighbourhood structures of `radius` on both sides
    (module docstring).
    """
    mask_x, mask_y = _masks(cost, mask_x, mask_y)
    dtype = _work_dtype(cost)
    linear = cost.to(dtype) + rho * temporal_prior(mask_x, mask_y, power=prior_power, dtype=dtype)
    return fused_gromov_wasserstein(
        linear, neighbourhood(mask_x, radius, dtype), neighbourhood(mask_y, radius, dtype),
        alpha=alpha, epsilon=epsilon, n_outer=n_outer, n_inner=n_inner,
        mask_x=mask_x, mask_y=mask_y, reg_m=reg_m,
    ).to(cost.dtype)


def assign_to_prototypes(
    cost: Tensor, *, epsilon: float, alpha: float, rho: float, radius: float, prior_power: float = 1.0,
    n_outer: int = 10, n_inner: int = 50, mask: Tensor | None = None, reg_m: RegM = None,
) -> Tensor:
    """Soft assignment (B, T, K) of frames to K ordered prototypes, for segmentation.

    cost (B, T, K): frame-to-prototype cost; mask (B, T) marks real frames. Balanced marginals by default:
    every real frame carries 1 / T, every prototype receives 1 / K. `reg_m` relaxes the prototype side only
    (frames keep their mass, prototypes may receive more or less: segments of unequal length, ASOT). The temporal prior
    favours frame t / T near prototype (k + 1/2) / K, i.e. prototypes visited in order, and the GW term with
    frame neighbourhoods against the prototype identity keeps neighbouring frames on one prototype (ASOT).
    Rows sum to 1 / T: divide by the row sum for per-frame probabilities.
    """
    batch, n_frames, k = cost.shape
    mask = _full_mask(batch, n_frames, cost.device) if mask is None else mask.bool()
    mask_k = _full_mask(batch, k, cost.device)
    dtype = _work_dtype(cost)
    linear = cost.to(dtype) + rho * temporal_prior(mask, mask_k, power=prior_power, dtype=dtype)
    same_prototype = torch.eye(k, dtype=dtype, device=cost.device).expand(batch, k, k)
    return fused_gromov_wasserstein(
        linear, neighbourhood(mask, radius, dtype), same_prototype,
        alpha=alpha, epsilon=epsilon, n_outer=n_outer, n_inner=n_inner,
        mask_x=mask, mask_y=mask_k, reg_m=None if reg_m is None else (float("inf"), reg_m),
    ).to(cost.dtype)


def segment_labels(plan: Tensor, mask: Tensor | None = None) -> Tensor:
    """(B, T, K) assignment -> (B, T) int64 prototype index per frame (argmax), -1 on padded frames."""
    labels = plan.argmax(2)
    return labels if mask is None else torch.where(mask.bool(), labels, -1)

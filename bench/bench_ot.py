"""Throughput of the batched log-domain OT solvers (model.blocks.ot) against POT looping over the same problems.

One batch of B problems of N x M frames (cosine costs between random unit embeddings, the alignment case),
the same epsilon and the same number of iterations on both sides, no early stopping:
- Sinkhorn: `model.blocks.ot.sinkhorn` (one call on the batch) vs `ot.sinkhorn(..., method='sinkhorn_log')`
  per problem (the like-for-like log-domain solver); POT's default exp-domain `method='sinkhorn'` is
  reported too, for reference (faster, but it under/overflows for small epsilon).
- Fused GW: `model.blocks.ot.fused_gromov_wasserstein` vs `ot.gromov.entropic_fused_gromov_wasserstein`
  (PGD, exp-domain inner Sinkhorn), `--outer` steps of `--inner` iterations each.
Agreement: largest absolute plan difference to POT on the first problem (float64).
The GPU figures are measured only where torch sees CUDA; otherwise they read "not measured".
Both sides run on `--threads` CPU threads (torch intra-op and numpy's BLAS), 1 by default.
Judged by: speedup = batched problems/s / POT sinkhorn_log problems/s (target > 1).

    python bench/bench_ot.py [--batch 32 --frames 256 --iters 100 --epsilon 0.05 --threads 1]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import ot as pot
import torch
from threadpoolctl import threadpool_limits

from model.blocks import ot as mot


def _problems(batch: int, n: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cosine costs (B, N, N) and intra-sequence neighbourhood structures (B, N, N), float32."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.normalize(torch.randn(batch, n, dim, generator=generator), dim=2)
    y = torch.nn.functional.normalize(torch.randn(batch, n, dim, generator=generator), dim=2)
    cost = 1 - x @ y.transpose(1, 2)
    structure = mot.neighbourhood(torch.ones(batch, n, dtype=torch.bool), 0.05)
    return cost, structure, structure.clone()


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _contenders(cost, c_x, c_y, args, device: torch.device) -> dict[str, object]:
    """Zero-argument runs of one batch each: ours on `device`, POT looping over the problems on the CPU."""
    costs, c1s, c2s = cost.numpy(), c_x.numpy(), c_y.numpy()
    n, m = costs.shape[1:]
    a, b = np.full(n, 1 / n, np.float32), np.full(m, 1 / m, np.float32)
    on_device = [t.to(device) for t in (cost, c_x, c_y)]

    def sync(result):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return result

    def pot_sinkhorn(method):
        return lambda: [
            pot.sinkhorn(a, b, c, args.epsilon, method=method, numItermax=args.iters, stopThr=0.0, warn=False)
            for c in costs
        ]

    def pot_fgw():
        for c, c1, c2 in zip(costs, c1s, c2s):
            pot.gromov.entropic_fused_gromov_wasserstein(
                c, c1, c2, a, b, epsilon=args.epsilon, alpha=0.5, max_iter=args.outer, tol=0.0,
                numItermax=args.inner, stopThr=0.0, warn=False,
            )

    return {
        "sinkhorn": lambda: sync(mot.sinkhorn(on_device[0], epsilon=args.epsilon, n_iters=args.iters)),
        "fgw": lambda: sync(mot.fused_gromov_wasserstein(
            *on_device, alpha=0.5, epsilon=args.epsilon, n_outer=args.outer, n_inner=args.inner
        )),
        "pot_sinkhorn_log": pot_sinkhorn("sinkhorn_log"),
        "pot_sinkhorn": pot_sinkhorn("sinkhorn"),
        "pot_fgw": pot_fgw,
    }


def _throughput(runs: dict[str, object], batch: int, repeats: int) -> dict[str, float]:
    """Problems/s of each run, best of `repeats` rounds; the rounds interleave the contenders so that load
    from other processes hits them alike."""
    for run in runs.values():
        run()  # warm-up
    best = {name: float("inf") for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            best[name] = min(best[name], _seconds(run))
    return {name: batch / seconds for name, seconds in best.items()}


def _agreement(cost, args) -> float:
    """Largest |plan - POT plan| on problem 0 in float64 (sinkhorn_log, same iterations)."""
    c = cost[0].double()
    ours = mot.sinkhorn(c[None], epsilon=args.epsilon, n_iters=args.iters)[0].numpy()
    n, m = c.shape
    theirs = pot.sinkhorn(
        np.full(n, 1 / n), np.full(m, 1 / m), c.numpy(), args.epsilon,
        method="sinkhorn_log", numItermax=args.iters, stopThr=0.0, warn=False,
    )
    return float(np.abs(ours - theirs).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--frames", type=int, default=256)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--epsilon", type=float, default=0.05)
    parser.add_argument("--iters", type=int, default=100, help="Sinkhorn iterations")
    parser.add_argument("--outer", type=int, default=5, help="fused GW mirror-descent steps")
    parser.add_argument("--inner", type=int, default=20, help="Sinkhorn iterations per fused GW step")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for torch and for numpy's BLAS (1: a per-core comparison, steady on a "
                             "shared machine)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    cost, c_x, c_y = _problems(args.batch, args.frames, args.dim, args.seed)
    torch.set_num_threads(args.threads)
    with threadpool_limits(limits=args.threads):
        cpu = _throughput(_contenders(cost, c_x, c_y, args, torch.device("cpu")), args.batch, args.repeats)
    gpu_sinkhorn = gpu_fgw = "not measured (no CUDA device)"
    if torch.cuda.is_available():
        runs = _contenders(cost, c_x, c_y, args, torch.device("cuda"))
        gpu = _throughput({k: runs[k] for k in ("sinkhorn", "fgw")}, args.batch, args.repeats)
        gpu_sinkhorn, gpu_fgw = round(gpu["sinkhorn"], 1), round(gpu["fgw"], 1)
    result = {
        "bench": "ot",
        "shape": [args.batch, args.frames, args.frames],
        "epsilon": args.epsilon,
        "sinkhorn_iters": args.iters,
        "fgw_outer_x_inner": [args.outer, args.inner],
        "cpu_threads": args.threads,
        **{f"cpu_{name}_problems_per_s": round(value, 2) for name, value in cpu.items()},
        "gpu_sinkhorn_problems_per_s": gpu_sinkhorn,
        "gpu_fgw_problems_per_s": gpu_fgw,
        "max_abs_plan_diff_vs_pot_float64": _agreement(cost, args),
        "speedup_vs_pot_sinkhorn_log": round(cpu["sinkhorn"] / cpu["pot_sinkhorn_log"], 2),
        "speedup_fgw_vs_pot": round(cpu["fgw"] / cpu["pot_fgw"], 2),
        "target": "speedup_vs_pot_sinkhorn_log > 1",
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""Benchmark: LA2DS training steps on Penn Action from the cached heatmaps against per-step rendering.

    python bench/bench_la2ds_inputs.py [--split test] [--steps 12] [--threads 2] [--set section.key=value ...]
                                       [--cached-set la2ds.key=value ...]

Both input paths train the same model (same initial weights, its own optimiser each) on the same batches of
Penn Action's training split (the first `--steps` batches of epoch 0, as the trainer draws them):
- cached: `heatmaps.zarr` maps (read once, then from memory) augmented in heatmap space
  (`model.inputs.heatmap_augment`): what `pipeline train --method la2ds` does;
- rendered: the joints_2d of the batch augmented as 2D skeletons (flip about the crop box's centre line,
  one limb rotated, Gaussian joint noise, as `model.inputs.skeleton_augment` does) and rasterised every
  step (`pipeline.heatmaps.raster_torch.render_torch`, the stage's compiled renderer on the CPU): the input
  path LA2DS had before it read the cache, kept here as the baseline.
Both compute the trainer's whole loss (`La2ds.view_loss`: matching, and with the default params the clip
token's DTW teacher, whose distances `La2ds.prepare` computes once before the steps, as the trainer does).
`--cached-set` changes the cached path's LA2DS params only (e.g. a smaller model against the paper-sized
model rendered per step), or its `train.autocast` (bfloat16: the cached path's steps under CPU autocast, as
`pipeline train` runs them with that setting; the rendered path stays float32). Steps alternate between the
paths so that both see the same load on this shared machine. Prints ONE JSON line: sequences per second of
each path (whole steps: collate, views, forward, backward, optimiser), the seconds spent making the views, the
ratio, the CPU seconds per sequence (less sensitive to other processes than wall time), the seconds of the
teacher's preparation (not in the steps), the load average before and after, and the heatmap store's size.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.workdir import make_context  # noqa: E402


def rendered_views(model, batch, heat, gen):
    """The per-step input path: window and subset as LA2DS draws them, skeleton augmentation, rasterisation
    of both views in the sequence's crop box. Returns (maps0, m0), (maps1, m1), pos, g0."""
    import torch

    from model.batch import gather_frames
    from model.inputs import skeleton_augment as aug
    from model.inputs.skeleton import descendants, kinematic_parents
    from model.inputs.temporal_augment import one_way_maps
    from pipeline.heatmaps.raster_torch import crop_box, render_torch

    p, layout = model.params, model.augment.layout
    joints = batch.arrays["joints_2d"]
    box = crop_box(joints, batch.mask, pad=heat.pad, square=heat.square, fallback=(0.0, 0.0, 1.0, 1.0))
    g0, m0, pos, m1 = one_way_maps(batch.lengths.tolist(), gen, probability=p.augment.temporal_p,
                                   min_fraction=p.augment.temporal_min_fraction, max_frames=p.max_frames)
    original = gather_frames(joints, g0)
    moved = gather_frames(original, pos)
    xy, conf = moved[..., :2], moved[..., 2]
    conf = torch.where(torch.isfinite(xy).all(-1), conf, torch.zeros_like(conf))
    perm = layout.joint_flip_permutation
    xy, flipped = aug.random_flip(xy, perm, (box[:, 0] + box[:, 2]) / 2, p.augment.flip_p, gen)
    conf = torch.where(flipped[:, None, None], conf[..., list(perm)], conf)
    parents = kinematic_parents(layout)
    angles = aug.limb_angles(parents, len(xy), std=p.augment.limb_std, p=p.augment.limb_p, one_limb=True, gen=gen)
    xy = aug.rotate_subtrees(torch.nan_to_num(xy), parents, descendants(parents), angles, gen)
    xy = aug.position_noise(xy, p.augment.position_std * (box[:, 2] - box[:, 0]) / heat.size, p.augment.position_p, gen)
    augmented = torch.cat((xy, conf.unsqueeze(-1)), dim=-1)

    def render(j, mask):
        return render_torch(j.float(), layout.limbs, box, heat.size, heat.sigma) * mask[..., None, None, None]

    return (render(original, m0), m0), (render(augmented, m1), m1), pos, g0


def step(model, optimizer, batch, gen, views=None, autocast: bool = False) -> tuple[float, float]:
    """One training step with the trainer's loss: `La2ds.loss` (views from the cache; matching, DTW teacher and
    cross-video loss as configured), spelled out here to time the views apart, or, when `views` is given, the
    same loss terms (`La2ds.view_loss`) of the views it renders. Forward under bfloat16 autocast when
    `autocast`; returns (seconds of the views, loss)."""
    import torch

    from model.methods.la2ds import heatmap_views

    start = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        if views is None:
            cached = heatmap_views(model.augment, batch, model.params, gen)
            m0, m1, pos, g0 = cached.m0, cached.m1, cached.pos, cached.g0
        else:
            (maps0, m0), (maps1, m1), pos, g0 = views(batch, gen)
        view_seconds = time.perf_counter() - start
        if views is None:
            encoded = cached.encoded(model.encoder)
        else:
            encoded = (model.encoder.forward_clip(maps0, m0), model.encoder.forward_clip(maps1, m1))
        loss, _ = model.view_loss(batch, encoded, m0, m1, pos, g0)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return view_seconds, float(loss.detach())


def main() -> None:
    args = parse_args()
    import torch

    from bench.bench_train_penn import prepare_index
    from model.batch import collate
    from model.buckets import epoch_batches
    from model.host_memory import keep_freed_memory
    from model.registry import get_method
    from model.trainer import TrainParams, autocast_enabled, step_seed
    from stages import heatmaps, keypoints
    from stages.heatmaps import HeatmapsParams
    from stages.shared.inputs import load_inputs

    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as the trainer does, for both paths
    ctx = make_context(ROOT / ".cache" / "bench_train_penn" / args.split, "pennaction", args.overrides)
    prepare_index(ctx, args.split)
    keypoints.run(ctx)
    heatmaps.run(ctx)
    cls = get_method("la2ds")
    params, train = ctx.params("la2ds", cls.params_cls), ctx.params("train", TrainParams)
    heat = ctx.params("heatmaps", HeatmapsParams)
    inputs = load_inputs(ctx, (("keypoints", "joints_2d"), ("heatmaps", "heatmap")))
    rows = [i for i, s in enumerate(inputs.splits) if s in train.train_splits]
    lengths = [len(inputs.arrays[i]["joints_2d"]) for i in rows]
    batches = epoch_batches(lengths, train.bucket_edges, train.batch_size, seed=train.seed, epoch=0)[: args.steps]
    start = time.perf_counter()
    for positions in batches:  # the first epoch reads the maps from Zarr; both paths then read memory
        for i in positions:
            inputs.arrays[rows[i]]["heatmap"].stored()
    cold_read = time.perf_counter() - start
    torch.manual_seed(train.seed)
    model = cls.build(params, inputs.spec)
    training = [inputs.arrays[i] for i in rows]
    start = time.perf_counter()
    model.prepare(training)  # the DTW teacher's distances (relate_weight > 0), as Trainer.run does first
    prepare_seconds = time.perf_counter() - start
    paths = {"rendered": model, "cached": copy.deepcopy(model)}
    autocast = {"rendered": False, "cached": False}
    if args.cached_set:
        cached_ctx = make_context(ROOT / ".cache" / "bench_train_penn" / args.split, "pennaction",
                                  [*args.overrides, *args.cached_set])
        torch.manual_seed(train.seed)
        paths["cached"] = cls.build(cached_ctx.params("la2ds", cls.params_cls), inputs.spec)
        paths["cached"].prepare(training)
        autocast["cached"] = autocast_enabled(cached_ctx.params("train", TrainParams).autocast, torch.device("cpu"))
    optimizers = {k: torch.optim.Adam(m.parameters(), lr=train.lr) for k, m in paths.items()}
    seconds = {k: 0.0 for k in paths}
    cpu_seconds = {k: 0.0 for k in paths}
    view_seconds = {k: 0.0 for k in paths}
    losses = {k: [] for k in paths}
    n_seq = 0
    load_before = os.getloadavg()
    for s, positions in enumerate(batches):
        for name in ("rendered", "cached") if s % 2 else ("cached", "rendered"):
            array = "heatmap" if name == "cached" else "joints_2d"
            gen = torch.Generator().manual_seed(step_seed(train.seed, s))
            t0, c0 = time.perf_counter(), time.process_time()
            batch = collate([{array: inputs.arrays[rows[i]][array]} for i in positions], index=positions)
            views = None if name == "cached" else (lambda b, g: rendered_views(paths["rendered"], b, heat, g))
            v, loss = step(paths[name], optimizers[name], batch, gen, views, autocast[name])
            seconds[name] += time.perf_counter() - t0
            cpu_seconds[name] += time.process_time() - c0
            view_seconds[name] += v
            losses[name].append(loss)
        n_seq += len(positions)
    load_after = os.getloadavg()
    rate = {k: n_seq / v for k, v in seconds.items()}
    store_bytes = sum(a["heatmap"].nbytes for a in inputs.arrays)
    print(json.dumps({
        "steps": len(batches), "sequences": n_seq, "batch_size": train.batch_size, "threads": args.threads,
        "seq_per_s": {k: round(v, 2) for k, v in rate.items()},
        "speedup_cached_over_rendered": round(rate["cached"] / rate["rendered"], 2),
        "view_seconds": {k: round(v, 2) for k, v in view_seconds.items()},
        "step_seconds": {k: round(v, 2) for k, v in seconds.items()},
        "cpu_seconds_per_sequence": {k: round(v / n_seq, 3) for k, v in cpu_seconds.items()},
        "speedup_in_cpu_time": round(cpu_seconds["rendered"] / cpu_seconds["cached"], 2),
        "cold_read_seconds": round(cold_read, 2), "prepare_seconds": round(prepare_seconds, 2),
        "mean_loss": {k: round(float(np.mean(v)), 4) for k, v in losses.items()},
        "heatmaps_stored_gib": round(store_bytes / 2**30, 2),
        "load_average": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in load_after]},
        "overrides": args.overrides, "cached_overrides": args.cached_set, "autocast": autocast,
        "parameters": {k: sum(p.numel() for p in m.parameters()) for k, m in paths.items()},
    }))


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--split", choices=["test", "val"], default="test")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    ap.add_argument("--cached-set", dest="cached_set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override a la2ds param, or train.autocast, of the cached path only")
    return ap.parse_args()


if __name__ == "__main__":
    main()

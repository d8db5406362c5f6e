"""Benchmark: one multi-activity alignment model on Penn Action's 13 actions, from real 2D keypoints.

    python bench/bench_train_penn.py [--method masa] [--split test|val] [--set section.key=value ...]

Runs the real stages in a work folder (default .cache/bench_train_penn): `index` on the official Penn Action
labels, then `train` (the model trains on the official train split on this machine's CPU cores), then
scores the embeddings of the evaluation split:
- Kendall's tau per action (every ordered pair of evaluation videos of the action, stride 2, nearest
  neighbour by squared Euclidean distance, scipy's tau-b; NaN pairs dropped and counted), and its mean;
- activity retrieval AP@10: per frame (stride 2) the share of its 10 nearest frames from *other* videos
  that show the same action, averaged over a video's frames, then over videos;
- action recognition: 16 frames at uniform positions per sequence, their embeddings concatenated in time
  order, standardised, multinomial logistic regression fitted on the training sequences' embeddings;
beside the same metrics for the raw normalised keypoints, for the raw keypoints with their sequence's mean and
standard deviation appended to every frame (no learning, but clip context), and for t/T, and prints ONE
JSON line with the targets (AP@10 >= 0.95, action recognition >= 0.97, training <= 900 s on CPU).

`--split val` carves a validation split from the official train split (20% of each action's videos,
seed 0), trains on the rest and evaluates on it: use it for every choice of method or params; `test`
(default) is for the final numbers only.

TEMPORARY: until the pose helper's `keypoints` stage lands on main, the bench writes joints_2d itself from
the official labels (x, y, visibility -> confidence) into <workdir>/data/pennaction/keypoints.zarr with
`ArtifactStore.write_sequence`; switch to `stages.keypoints.run` once it exists.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TEAM_RAW = {"tau": 0.187, "action_recognition": 0.909, "activity_ap10": 0.717}
TARGETS = {"activity_ap10": 0.95, "action_recognition": 0.97, "train_seconds": 900}


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import torch

    torch.set_num_threads(args.threads)
    work = Path(args.workdir or ROOT / ".cache" / "bench_train_penn" / args.split).resolve()
    ctx = make_context(work, args.overrides)
    prepare_index(ctx, args.split)
    write_temporary_keypoints(ctx)
    if args.fresh:
        shutil.rmtree(ctx.models_dir(args.method), ignore_errors=True)
    from stages import train

    start = time.perf_counter()
    train.run(ctx, args.method, device="cpu")
    stage_seconds = time.perf_counter() - start
    records = [json.loads(line) for line in (ctx.models_dir(args.method) / "log.jsonl").read_text().splitlines()]
    result = evaluate(ctx, args.method, args.split)
    result.update(
        method=args.method,
        split=args.split,
        overrides=args.overrides,
        train_seconds=round(records[-1]["elapsed_s"], 1) if records else None,
        stage_seconds=round(stage_seconds, 1),
        train_seq_per_s_cpu=round(float(np.mean([r["seq_per_s"] for r in records])), 1) if records else None,
        threads=torch.get_num_threads(),
        final_loss={k: round(v, 4) for k, v in records[-1].items() if k in ("loss", "matching", "clustering")},
        team_raw_baseline=TEAM_RAW,
        targets=TARGETS,
    )
    result["meets_targets"] = bool(
        result["activity_ap10"] >= TARGETS["activity_ap10"]
        and result["action_recognition"] >= TARGETS["action_recognition"]
        and (result["train_seconds"] or 0) <= TARGETS["train_seconds"]
    )
    print(json.dumps(result))


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--method", default="masa")
    ap.add_argument("--split", choices=["test", "val"], default="test")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override a params.yaml value for this run (YAML value), e.g. --set train.epochs=5")
    ap.add_argument("--workdir", default=None, help="default: .cache/bench_train_penn/<split>")
    ap.add_argument("--fresh", action="store_true", help="delete the method's checkpoint first")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quiet", action="store_true")
    return ap.parse_args()


def make_context(work: Path, overrides: list[str]):
    """A StageContext rooted in `work`, with params.yaml plus the overrides written to work/params.yaml."""
    from pipeline.context import StageContext
    from pipeline.manifest import load_manifest

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for item in overrides:
        key, _, value = item.partition("=")
        *path, last = key.split(".")
        node = params
        for part in path:
            node = node.setdefault(part, {})
        node[last] = yaml.safe_load(value)
    work.mkdir(parents=True, exist_ok=True)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    spec = load_manifest(ROOT / "data_manifest.yaml").get("pennaction")
    return StageContext(dataset=spec, params_path=work / "params.yaml", store_root=str(work / "data"), workdir=work)


def prepare_index(ctx, split: str) -> None:
    """Run the index stage; for --split val move 20% of each action's train videos to split 'val'."""
    from pipeline.sequences import read_index, write_index
    from stages import index

    index.run(ctx)
    if split == "val":
        idx = read_index(ctx.index_path)
        table = idx.table.copy()
        rng = np.random.default_rng(0)
        for _, group in table[table["split"] == "train"].groupby("activity"):
            picked = rng.choice(group.index.to_numpy(), size=max(1, round(0.2 * len(group))), replace=False)
            table.loc[picked, "split"] = "val"
        write_index(table, ctx.index_path, idx.label_names)


def write_temporary_keypoints(ctx) -> None:
    """TEMPORARY (see module docstring): joints_2d from the official labels, on the dataset timeline."""
    from pipeline.datasets.penn_action import read_labels
    from pipeline.sequences import read_index
    from pipeline.store import ArtifactStore
    from pipeline.timeline import resample_indices, uniform_times

    store = ArtifactStore(ctx.artifact("keypoints"), mode="a")
    store.set_provenance(stage="bench_train_penn (temporary keypoints)", params={}, layout=ctx.dataset.layout)
    for row in read_index(ctx.index_path).rows():
        if store.is_current(row["id"], row["fingerprint"]):
            continue
        lab = read_labels(row["pose"])
        keep = resample_indices(uniform_times(lab.n_frames, row["source_fps"]), row["fps"])
        joints = np.stack([lab.x, lab.y, lab.visibility.astype(np.float64)], axis=-1)[keep].astype(np.float32)
        store.write_sequence(row["id"], {"joints_2d": (joints, ("time", "joint", "channel"))},
                             fingerprint=row["fingerprint"], attrs={"layout": ctx.dataset.layout, "fps": row["fps"]})


# ----------------------------------------------------------------------------- evaluation
def evaluate(ctx, method: str, split: str) -> dict:
    import torch

    from model.coordinates import CoordinateInput
    from pipeline.sequences import read_index
    from pipeline.skeletons import get_layout
    from pipeline.store import ArtifactStore

    table = read_index(ctx.index_path).table
    train = table[table["split"] == "train"]
    test = table[table["split"] == split]
    emb_store = ArtifactStore(ctx.artifact(f"embeddings_{method}"))
    kp_store = ArtifactStore(ctx.artifact("keypoints"))
    layout = kp_store.provenance["layout"]
    coords = CoordinateInput("joints_2d", (get_layout(layout).n_joints, 3), layout, "sequence", use_confidence=False)

    def raw(seq: str) -> np.ndarray:
        joints = torch.as_tensor(kp_store.read(seq, "joints_2d"))[None]
        xy, conf = coords.prepare(joints, torch.ones(joints.shape[:2], dtype=torch.bool))
        return coords.features(xy, conf)[0].numpy()

    def raw_with_clip_stats(seq: str) -> np.ndarray:
        """No learning, with context: each frame's keypoints beside its sequence's mean and std (weight 3)."""
        e = raw(seq)
        stats = np.concatenate([e.mean(0), e.std(0)]) * 3.0
        return np.concatenate([e, np.repeat(stats[None], len(e), 0)], 1)

    def time_only(seq: str) -> np.ndarray:
        n = int(table.loc[table["id"] == seq, "n_frames"].iloc[0])
        return (np.arange(n) / max(n - 1, 1))[:, None]

    sources = {"model": lambda s: emb_store.read(s, "embedding"), "raw_keypoints": raw,
               "raw_keypoints_with_clip_stats": raw_with_clip_stats, "t_over_T": time_only}
    out = {}
    for name, read in sources.items():
        tr = [read(s) for s in train["id"]]
        te = [read(s) for s in test["id"]]
        taus, dropped = per_action_tau(te, list(test["activity"]))
        scores = {
            "tau_mean": round(float(np.mean(list(taus.values()))), 4),
            "tau_per_action": {k: round(v, 4) for k, v in taus.items()},
            "tau_nan_pairs": dropped,
            "activity_ap10": round(activity_retrieval(te, list(test["activity"]), k=10), 4),
            "action_recognition": round(action_recognition(tr, list(train["activity"]), te, list(test["activity"])), 4),
        }
        if name == "model":
            out.update(scores)
        else:
            out[name] = {k: v for k, v in scores.items() if k != "tau_per_action"}
    out["n_train"], out["n_eval"] = len(train), len(test)
    return out


def per_action_tau(embs: list[np.ndarray], actions: list[str], stride: int = 2) -> tuple[dict[str, float], int]:
    """Mean Kendall's tau-b over ordered pairs of videos of each action; NaN pairs dropped and counted."""
    from scipy.stats import kendalltau

    taus, dropped = {}, 0
    for action in sorted(set(actions)):
        videos = [e[::stride] for e, a in zip(embs, actions) if a == action]
        values = []
        for i, a in enumerate(videos):
            for j, b in enumerate(videos):
                if i == j:
                    continue
                dist = (a**2).sum(1)[:, None] - 2 * a @ b.T + (b**2).sum(1)[None, :]
                tau = kendalltau(np.arange(len(a)), dist.argmin(axis=1)).statistic
                if np.isnan(tau):
                    dropped += 1
                else:
                    values.append(tau)
        taus[action] = float(np.mean(values)) if values else float("nan")
    return taus, dropped


def activity_retrieval(embs: list[np.ndarray], actions: list[str], k: int, stride: int = 2) -> float:
    """Share of each frame's k nearest frames from other videos with the same action (frames, then videos)."""
    X = np.concatenate([e[::stride] for e in embs]).astype(np.float64)
    video = np.concatenate([np.full(len(e[::stride]), i) for i, e in enumerate(embs)])
    label = np.asarray(actions)[video]
    sq = (X**2).sum(1)
    hits = np.empty(len(X))
    for start in range(0, len(X), 2048):
        stop = min(start + 2048, len(X))
        dist = sq[start:stop, None] - 2 * X[start:stop] @ X.T + sq[None, :]
        dist[video[start:stop, None] == video[None, :]] = np.inf
        nearest = np.argpartition(dist, k, axis=1)[:, :k]
        hits[start:stop] = (label[nearest] == label[start:stop, None]).mean(1)
    return float(np.mean([hits[video == v].mean() for v in np.unique(video)]))


def action_recognition(train: list[np.ndarray], train_y: list[str], test: list[np.ndarray], test_y: list[str]) -> float:
    """16 uniformly placed frames per sequence, concatenated; standardised logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def clip(e: np.ndarray) -> np.ndarray:
        return e[np.linspace(0, len(e) - 1, 16).round().astype(int)].ravel()

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    clf.fit(np.stack([clip(e) for e in train]), train_y)
    return float(clf.score(np.stack([clip(e) for e in test]), test_y))


if __name__ == "__main__":
    main()

"""Evaluation plots (matplotlib, Agg backend, PNG) at stable paths under `plots/<dataset>/<method>/`.

    tsne.png              t-SNE of validation frame embeddings coloured by activity (MASA Fig. 3)
    alignment.png         two validation sequences of one activity, each frame joined to its nearest
                          neighbour in the other (MASA Fig. 1, LA2DS Figs. 8-9)
    tau_per_activity.png  Kendall's tau per activity, learned embeddings beside the baselines
    action_confusion.png  action recognition confusion matrix (row-normalised), when computed
    loss.png              training loss curve from the model's log.jsonl ({"step", "loss", ...} per line;
                          per-activity models: one curve per models/<D>/<method>/<activity>/log.jsonl)

The embedding plotted (t-SNE, alignment, confusion) is the learned one, or the first raw baseline for
method 'raw'.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)
FILES = ("tsne.png", "alignment.png", "tau_per_activity.png", "action_confusion.png", "loss.png")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_all(out_dir: Path, val, features: dict[str, list[np.ndarray]], results: dict[str, Any],
              models_dir: Path, params, *, seed: int = 0) -> list[Path]:
    """Write every plot that has data; returns the files written. `val` has .ids, .activities, .labels."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in FILES:  # a plot that no longer has data must not survive from an earlier run
        (out_dir / stale).unlink(missing_ok=True)
    primary = "learned" if "learned" in features else next(iter(features))
    embs = features[primary]
    taus = {f: r.metrics["kendalls_tau"]["per_activity"] for f, r in results.items()}
    written = [
        tsne(out_dir / "tsne.png", embs, val.activities, params.tsne_frames, params.tsne_perplexity, seed, primary),
        alignment(out_dir / "alignment.png", embs, val.ids, val.activities, val.labels, primary),
        tau_bars(out_dir / "tau_per_activity.png", taus),
    ]
    if results[primary].confusion is not None:
        written.append(confusion(out_dir / "action_confusion.png", *results[primary].confusion, primary))
    single = models_dir / "log.jsonl"
    logs = [single] if single.is_file() else sorted(models_dir.glob("*/log.jsonl"))
    if logs:
        written.append(loss_curve(out_dir / "loss.png", logs))
    written = [p for p in written if p is not None]
    log.info("plots: %s", ", ".join(str(p) for p in written))
    return written


def tsne(
    path: Path, embs: list[np.ndarray], activities, max_frames: int, perplexity: float, seed: int, name: str
) -> Path:
    """Frames subsampled evenly to at most `max_frames`, 2-d t-SNE (PCA init), one colour per activity."""
    from sklearn.manifold import TSNE

    x = np.concatenate(embs)
    acts = np.concatenate([[a] * len(e) for e, a in zip(embs, activities)])
    keep = np.linspace(0, len(x) - 1, min(len(x), max_frames)).round().astype(int)
    x, acts = x[keep], acts[keep]
    from model.metrics.protocol import single_threaded

    with single_threaded():  # Barnes-Hut t-SNE threads thrash a busy machine (measured 10x slower)
        init = "pca" if x.shape[1] >= 2 else "random"  # PCA cannot give 2 components of 1-d data (t/T)
        tsne_model = TSNE(2, perplexity=min(perplexity, max(1.0, (len(x) - 1) / 3)), init=init, random_state=seed)
        xy = tsne_model.fit_transform(x)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 6))
    for i, act in enumerate(sorted(set(acts))):
        sel = acts == act
        ax.scatter(xy[sel, 0], xy[sel, 1], s=3, color=plt.cm.tab20(i % 20), label=act)
    ax.set_title(f"t-SNE of {name} frame embeddings ({len(x)} frames)")
    ax.legend(markerscale=4, fontsize=7, loc="best")
    ax.set_xticks([]), ax.set_yticks([])
    return _save(fig, path)


def alignment(path: Path, embs, ids, activities, labels, name: str, max_lines: int = 40) -> Path | None:
    """Frames of two sequences on two rows (normalised time); lines join each frame to its nearest neighbour."""
    pair = next(([i for i, a in enumerate(activities) if a == act][:2] for act in sorted(set(activities))
                 if sum(a == act for a in activities) >= 2), None)
    if pair is None:
        return None
    a, b = pair
    xa, xb = embs[a], embs[b]
    nn = ((xb**2).sum(1)[None, :] - 2.0 * xa @ xb.T).argmin(1)  # squared distance up to |xa|^2
    ta, tb = np.arange(len(xa)) / max(len(xa) - 1, 1), np.arange(len(xb)) / max(len(xb) - 1, 1)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 3))
    for i in np.linspace(0, len(xa) - 1, min(len(xa), max_lines)).round().astype(int):
        ax.plot([ta[i], tb[nn[i]]], [1, 0], color="0.6", lw=0.8, ls="--")
    colour_a = labels[a] if labels is not None else ta
    colour_b = labels[b] if labels is not None else tb
    ax.scatter(ta, np.ones_like(ta), c=colour_a, cmap="viridis", s=12, zorder=3)
    ax.scatter(tb, np.zeros_like(tb), c=colour_b, cmap="viridis", s=12, zorder=3)
    ax.set_yticks([0, 1], [ids[b], ids[a]])
    ax.set_xlabel("normalised time (colour: phase label)" if labels is not None else "normalised time")
    ax.set_title(f"{activities[a]}: nearest-neighbour alignment with {name} embeddings")
    return _save(fig, path)


def tau_bars(path: Path, per_feature: dict[str, dict[str, float | None]]) -> Path:
    acts = sorted({a for values in per_feature.values() for a in values})
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(acts) + 2), 4))
    width = 0.8 / len(per_feature)
    for j, (feat, values) in enumerate(per_feature.items()):
        heights = [np.nan if values.get(a) is None else values[a] for a in acts]
        ax.bar(np.arange(len(acts)) + j * width, heights, width, label=feat)
    ax.set_xticks(np.arange(len(acts)) + 0.4 - width / 2, acts, rotation=45, ha="right")
    ax.set_ylabel("Kendall's tau")
    values = [v for d in per_feature.values() for v in d.values() if v is not None and not math.isnan(v)]
    lowest = min(values, default=0.0)
    ax.set_ylim(min(0.0, lowest), 1.0)
    ax.legend(fontsize=8)
    return _save(fig, path)


def confusion(path: Path, classes: list[str], counts: np.ndarray, name: str) -> Path:
    rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(0.45 * len(classes) + 3, 0.45 * len(classes) + 2.5))
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(classes)), classes, fontsize=7)
    ax.set_xlabel("predicted"), ax.set_ylabel("true")
    ax.set_title(f"action recognition ({name})")
    fig.colorbar(im, ax=ax, fraction=0.046)
    return _save(fig, path)


def _read_log(log_path: Path) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(log_path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{log_path}:{n}: not a JSON line: {err}") from err
    return [r for r in rows if "step" in r and isinstance(r.get("loss"), (int, float))]


def loss_curve(path: Path, logs: list[Path]) -> Path | None:
    """One log: every numeric key starting with 'loss' against 'step'; several (per-activity models): 'loss'
    of each, labelled by its folder. A malformed line is an error naming the file and line."""
    curves = []
    for log_path in logs:
        rows = _read_log(log_path)
        keys = ["loss"] if len(logs) > 1 else sorted(
            {k for r in rows for k, v in r.items() if k.startswith("loss") and isinstance(v, (int, float))})
        for key in keys:
            pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
            if pts:
                curves.append((key if len(logs) == 1 else log_path.parent.name, pts))
    if not curves:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, pts in curves:
        ax.plot(*zip(*pts), label=label, lw=1)
    ax.set_xlabel("step"), ax.set_ylabel("loss"), ax.set_title(f"training loss ({logs[0].parent.name})")
    ax.legend(fontsize=7)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path

"""Evaluation plots (matplotlib, Agg backend, PNG) at stable paths under `plots/<dataset>/<run>/`.

    tsne.png              t-SNE of validation frame embeddings coloured by activity (MASA Fig. 3)
    alignment.png         two validation sequences of one activity, each frame joined to its nearest
                          neighbour in the other, frames coloured by phase with a legend (MASA Fig. 1,
                          LA2DS Figs. 8-9)
    tau_per_activity.png  Kendall's tau per activity, learned embeddings beside the baselines
    action_confusion.png  action recognition confusion matrix: counts in the cells, colour = share of the row
    loss.png              every training loss term against the step, one panel per term (one line per model
                          when there is one model per activity), read from the loss curves `train` writes
                          (`losses/<D>/<method>/`, `stages.shared.loss_curves`); a dashed line marks where a
                          staged method (late fusion, `stage1_epochs`) switches to its fused stage

Every title names the run ("<method> on <dataset>"). The embedding plotted (t-SNE, alignment, confusion) is the
learned one, or the first raw baseline for method 'raw'. The PNGs carry no matplotlib version, so the same
figures are the same bytes (they are a DVC output).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from stages.shared import loss_curves

log = logging.getLogger(__name__)
FILES = ("tsne.png", "alignment.png", "tau_per_activity.png", "action_confusion.png", "loss.png")
FEATURE_NAMES = {"learned": "learned", "raw_keypoints": "raw 2D keypoints", "raw_dino": "raw DINOv2", "time": "t/T"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def colours(n: int) -> list:
    """`n` colours told apart at a glance: tab10, then tab20 (pairs of one hue) past ten."""
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def write_all(out_dir: Path, val, features: dict[str, list[np.ndarray]], results: dict[str, Any],
              models_dir: Path, params, *, seed: int = 0, title: str = "", curves: Path | None = None) -> list[Path]:
    """Write every plot that has data; returns the files written. `val` has .ids, .activities, .labels and
    .label_names; `title` names the run; `curves`: the run's loss-curve folder."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in FILES:  # a plot that no longer has data must not survive from an earlier run
        (out_dir / stale).unlink(missing_ok=True)
    primary = "learned" if "learned" in features else next(iter(features))
    embs, name = features[primary], FEATURE_NAMES.get(primary, primary)
    taus = {FEATURE_NAMES.get(f, f): r.metrics["kendalls_tau"]["per_activity"] for f, r in results.items()}
    written = [
        tsne(out_dir / "tsne.png", embs, val.activities, params.tsne_frames, params.tsne_perplexity, seed,
             f"{title}: t-SNE of {name} frame embeddings"),
        alignment(out_dir / "alignment.png", embs, val.ids, val.activities, val.labels,
                  getattr(val, "label_names", {}), f"{title}: nearest-neighbour alignment ({name} embeddings)"),
        tau_bars(out_dir / "tau_per_activity.png", taus, f"{title}: Kendall's tau per activity"),
    ]
    if results[primary].confusion is not None:
        written.append(confusion(out_dir / "action_confusion.png", *results[primary].confusion,
                                 f"{title}: action recognition ({name} embeddings)"))
    if curves is not None and curves.is_dir():
        written.append(loss_curve(out_dir / "loss.png", curves, models_dir, f"{title}: training loss terms"))
    written = [p for p in written if p is not None]
    log.info("plots: %s", ", ".join(str(p) for p in written))
    return written


def tsne(path: Path, embs: list[np.ndarray], activities, max_frames: int, perplexity: float, seed: int,
         title: str) -> Path:
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
    names = sorted(set(acts))
    for act, colour in zip(names, colours(len(names))):
        sel = acts == act
        ax.scatter(xy[sel, 0], xy[sel, 1], s=3, color=colour, label=act)
    ax.set_title(f"{title} ({len(x)} frames)", fontsize=9)
    ax.legend(markerscale=4, fontsize=7, loc="best", title="activity", title_fontsize=7)
    ax.set_xticks([]), ax.set_yticks([])
    return _save(fig, path)


def alignment(path: Path, embs, ids, activities, labels, label_names: dict[int, str], title: str,
              max_lines: int = 40) -> Path | None:
    """Frames of two sequences on two rows (normalised time); lines join each frame to its nearest neighbour;
    frames coloured by phase label, named in the legend."""
    pair = next(([i for i, a in enumerate(activities) if a == act][:2] for act in sorted(set(activities))
                 if sum(a == act for a in activities) >= 2), None)
    if pair is None:
        return None
    a, b = pair
    xa, xb = embs[a], embs[b]
    nn = ((xb**2).sum(1)[None, :] - 2.0 * xa @ xb.T).argmin(1)  # squared distance up to |xa|^2
    ta, tb = np.arange(len(xa)) / max(len(xa) - 1, 1), np.arange(len(xb)) / max(len(xb) - 1, 1)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 3.4))
    for i in np.linspace(0, len(xa) - 1, min(len(xa), max_lines)).round().astype(int):
        ax.plot([ta[i], tb[nn[i]]], [1, 0], color="0.6", lw=0.8, ls="--")
    if labels is None:
        for t, y in ((ta, 1), (tb, 0)):
            ax.scatter(t, np.full_like(t, y), c=t, cmap="viridis", s=12, zorder=3)
        ax.set_xlabel("normalised time (colour: time; the dataset has no phase labels)")
    else:
        _phase_scatter(ax, [(ta, labels[a], 1), (tb, labels[b], 0)], label_names)
        ax.set_xlabel("normalised time")
    ax.set_yticks([0, 1], [ids[b], ids[a]])
    ax.set_ylim(-0.3, 1.3)
    ax.set_title(f"{title}: {activities[a]}", fontsize=9)
    return _save(fig, path)


def _phase_scatter(ax, rows: list[tuple[np.ndarray, np.ndarray, float]], label_names: dict[int, str]) -> None:
    """Frames of each row coloured by phase (in order of first appearance), one legend entry per phase."""
    from matplotlib.lines import Line2D

    phases = list(dict.fromkeys(int(v) for _, y, _ in rows for v in y))
    labelled = [p for p in phases if p >= 0]
    palette = {**dict(zip(labelled, colours(len(labelled)))), -1: (0.75, 0.75, 0.75, 1.0)}
    for t, y, row in rows:
        ax.scatter(t, np.full(len(t), row), color=[palette[int(v)] for v in y], s=14, zorder=3)
    names = {p: label_names.get(p, f"phase {p}").split("/")[-1] if p >= 0 else "unlabelled" for p in phases}
    handles = [Line2D([], [], ls="", marker="o", color=palette[p], label=names[p]) for p in phases]
    ax.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.28),
              ncol=min(len(phases), 6), title="phase", title_fontsize=7, frameon=False)


def tau_bars(path: Path, per_feature: dict[str, dict[str, float | None]], title: str) -> Path:
    acts = sorted({a for values in per_feature.values() for a in values})
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(acts) + 2), 4))
    width = 0.8 / len(per_feature)
    for j, ((feat, values), colour) in enumerate(zip(per_feature.items(), colours(len(per_feature)))):
        heights = [np.nan if values.get(a) is None else values[a] for a in acts]
        ax.bar(np.arange(len(acts)) + j * width, heights, width, label=feat, color=colour)
    ax.set_xticks(np.arange(len(acts)) + 0.4 - width / 2, acts, rotation=45, ha="right")
    ax.set_ylabel("Kendall's tau")
    values = [v for d in per_feature.values() for v in d.values() if v is not None and not math.isnan(v)]
    lowest = min(values, default=0.0)
    ax.set_ylim(min(0.0, lowest), 1.0)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    return _save(fig, path)


def confusion(path: Path, classes: list[str], counts: np.ndarray, title: str) -> Path:
    """Rows = true class; each cell shows its count, its colour the share of the row."""
    rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(0.5 * len(classes) + 3.5, 0.5 * len(classes) + 2.5))
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for (r, c), n in np.ndenumerate(counts):
        if n:
            ax.text(c, r, str(int(n)), ha="center", va="center", fontsize=7,
                    color="white" if rates[r, c] > 0.5 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(classes)), classes, fontsize=7)
    ax.set_xlabel("predicted"), ax.set_ylabel("true")
    ax.set_title(f"{title}\n{int(counts.trace())} of {int(counts.sum())} clips correct", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class")
    return _save(fig, path)


def read_curves(folder: Path) -> dict[str | None, dict[str, list[tuple[int, int, float]]]]:
    """{model: {term: [(step, epoch, value)]}}: model None for one model (TSVs in `folder`), else the
    activity sub-folder's name."""
    groups: dict[str | None, dict[str, list]] = {}
    for path in sorted(Path(folder).rglob("*.tsv")):
        group = None if path.parent == Path(folder) else path.parent.name
        term, points = loss_curves.read(path)
        if points:
            groups.setdefault(group, {})[term] = points
    return groups


def stage_switch(models_dir: Path, group: str | None, points: list[tuple[int, int, float]]) -> float | None:
    """The step where a staged method enters its next stage (`stage1_epochs` in the model's params), from the
    model's config.json; None for methods without stages or without the config."""
    config_path = (models_dir if group is None else models_dir / group) / "config.json"
    if not config_path.is_file() or not points:
        return None
    config = json.loads(config_path.read_text())
    stage1 = config.get("params", {}).get("stage1_epochs")
    train = config.get("train", {})
    if not stage1:
        return None
    last_step, last_epoch = points[-1][0], points[-1][1]
    if train.get("max_steps") == 0 and last_epoch == train.get("epochs", 0) - 1 and last_step % train["epochs"] == 0:
        return stage1 * last_step / train["epochs"]  # steps per epoch from the finished run
    later = [step for step, epoch, _ in points if epoch >= stage1]
    return float(later[0]) if later else None


def loss_curve(path: Path, curves: Path, models_dir: Path, title: str) -> Path | None:
    """One panel per term ('loss', the total, first; 'lr' last), one line per model; a malformed curve file
    is an error naming the file and line."""
    groups = read_curves(curves)
    if not groups:
        return None
    terms = sorted({t for g in groups.values() for t in g}, key=lambda t: (t != "loss", t == "lr", t))
    plt = _pyplot()
    cols = min(3, len(terms))
    rows = math.ceil(len(terms) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.8 * rows + 0.6), squeeze=False)
    palette = dict(zip(groups, colours(len(groups))))
    switches = {g: stage_switch(models_dir, g, next(iter(by_term.values()))) for g, by_term in groups.items()}
    for ax, term in zip(axes.flat, terms):
        for group, by_term in groups.items():
            if term in by_term:
                steps, _, values = zip(*by_term[term])
                ax.plot(steps, values, lw=1.2, color=palette[group], label=group or term,
                        marker="o" if len(steps) < 30 else None, ms=3)  # a short run's few points stay visible
        for step in sorted({s for s in switches.values() if s is not None}):
            ax.axvline(step, color="0.3", ls="--", lw=1, label="fused stage starts")
        ax.set_title(term, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        if len(groups) > 1 or any(s is not None for s in switches.values()):
            ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(terms):]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})  # no matplotlib version in the file
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path

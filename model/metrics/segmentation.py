"""Action segmentation metrics: Hungarian-matched MoF / F1 / mIoU, and MS-TCN's segmental F1@k and Edit.

Inputs are lists of per-video integer arrays (T_v,); a single 1-d array counts as one video.

- Unsupervised segmentation (clusters, not classes): `hungarian_match` maps clusters one-to-one onto classes
  maximising the number of frames that agree (scipy's linear_sum_assignment on the contingency table);
  clusters left without a class are wrong everywhere. `segmentation_scores` reports, after matching, MoF
  (frame accuracy), F1 (segmental F1 at IoU 0.5, the convention of CTE / TOT / ASOT-style evaluations) and
  mIoU (mean over ground-truth classes of frame IoU), with one matching over all videos pooled or one per
  video (then averaged over videos).
- Supervised segmentation (predicted classes): `segmental_f1` and `edit_score` follow the definitions of
  MS-TCN (Farha & Gall, CVPR 2019, `eval.py`): segments are maximal runs of one label, background classes
  are not segments; a predicted segment is a true positive when its IoU with a not-yet-matched ground-truth
  segment of the same label reaches the overlap; tp/fp/fn are summed over videos. Edit is the Levenshtein
  distance between the segment label sequences, normalised by the longer one, as 1 - d / max(len), averaged
  over videos. Scores are fractions in [0, 1] (MS-TCN prints them x 100).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

UNLABELLED = -1


def _videos(x: Sequence[np.ndarray] | np.ndarray) -> list[np.ndarray]:
    if isinstance(x, np.ndarray) and x.ndim == 1:
        return [x]
    return [np.asarray(v) for v in x]


def hungarian_match(pred: np.ndarray, gt: np.ndarray) -> dict[int, int]:
    """One-to-one map cluster -> class maximising agreeing frames; pred and gt are (N,) ints."""
    from scipy.optimize import linear_sum_assignment

    pred, gt = np.asarray(pred), np.asarray(gt)
    clusters, p = np.unique(pred, return_inverse=True)
    classes, g = np.unique(gt, return_inverse=True)
    overlap = np.zeros((len(clusters), len(classes)), dtype=np.int64)
    np.add.at(overlap, (p, g), 1)
    rows, cols = linear_sum_assignment(overlap, maximize=True)
    return {int(clusters[r]): int(classes[c]) for r, c in zip(rows, cols)}


def apply_mapping(pred: np.ndarray, mapping: dict[int, int], unmatched: int = UNLABELLED - 1) -> np.ndarray:
    """Relabel clusters with their matched class; clusters without one become `unmatched` (never correct)."""
    lut = {int(k): v for k, v in mapping.items()}
    return np.array([lut.get(int(c), unmatched) for c in np.asarray(pred)], dtype=np.int64)


def mof(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean over frames: the share of frames whose prediction equals the ground truth."""
    pred, gt = np.asarray(pred), np.asarray(gt)
    return float((pred == gt).mean()) if len(gt) else float("nan")


def miou(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean over the ground-truth classes of |pred == c and gt == c| / |pred == c or gt == c|."""
    pred, gt = np.asarray(pred), np.asarray(gt)
    ious = [((pred == c) & (gt == c)).sum() / ((pred == c) | (gt == c)).sum() for c in np.unique(gt)]
    return float(np.mean(ious)) if ious else float("nan")


def segmentation_scores(
    preds: Sequence[np.ndarray] | np.ndarray, gts: Sequence[np.ndarray] | np.ndarray, *, per_video: bool = False
) -> dict[str, float]:
    """MoF, F1 (segmental, IoU 0.5) and mIoU of cluster predictions after Hungarian matching.

    Unlabelled ground-truth frames (-1) take no part in the matching or the scores.

    per_video=False: one matching over all videos pooled, scores over pooled frames (F1 sums tp/fp/fn over
    videos). per_video=True: one matching per video, each score averaged over videos.
    """
    preds, gts = _videos(preds), _videos(gts)
    if per_video:
        each = [segmentation_scores([p], [g]) for p, g in zip(preds, gts)]
        return {key: float(np.mean([e[key] for e in each])) for key in ("mof", "f1", "miou")}
    flat_p, flat_g = np.concatenate(preds), np.concatenate(gts)
    labelled = flat_g != UNLABELLED
    mapping = hungarian_match(flat_p[labelled], flat_g[labelled])
    mapped = [apply_mapping(p, mapping) for p in preds]
    flat_p, flat_g = np.concatenate(mapped)[labelled], flat_g[labelled]
    return {"mof": mof(flat_p, flat_g), "f1": segmental_f1(mapped, gts, 0.5), "miou": miou(flat_p, flat_g)}


def segments(labels: np.ndarray, background: Sequence[int] = ()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximal runs of one label -> (labels, starts, ends), end exclusive; background and -1 runs dropped."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty
    change = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(labels)]])
    runs = labels[starts]
    keep = ~np.isin(runs, [UNLABELLED, *background])
    return runs[keep], starts[keep], ends[keep]


def _f1_counts(pred: np.ndarray, gt: np.ndarray, overlap: float, background: Sequence[int]) -> tuple[int, int, int]:
    p_lab, p_start, p_end = segments(pred, background)
    g_lab, g_start, g_end = segments(gt, background)
    hit = np.zeros(len(g_lab), dtype=bool)
    tp = fp = 0
    for lab, s, e in zip(p_lab, p_start, p_end):
        inter = np.minimum(e, g_end) - np.maximum(s, g_start)
        union = np.maximum(e, g_end) - np.minimum(s, g_start)
        iou = np.where(g_lab == lab, inter / union, 0.0)
        best = int(iou.argmax()) if len(iou) else -1
        if best >= 0 and iou[best] >= overlap and not hit[best]:
            tp, hit[best] = tp + 1, True
        else:
            fp += 1
    return tp, fp, int(len(g_lab) - hit.sum())


def segmental_f1(
    pred: Sequence[np.ndarray] | np.ndarray,
    gt: Sequence[np.ndarray] | np.ndarray,
    overlap: float,
    background: Sequence[int] = (),
) -> float:
    """MS-TCN's F1@overlap (e.g. 0.10, 0.25, 0.50), tp/fp/fn summed over videos; 0 when nothing matches."""
    tp = fp = fn = 0
    for p, g in zip(_videos(pred), _videos(gt)):
        a, b, c = _f1_counts(p, g, overlap, background)
        tp, fp, fn = tp + a, fp + b, fn + c
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def _levenshtein(a: np.ndarray, b: np.ndarray) -> int:
    row = np.arange(len(b) + 1)
    for i, x in enumerate(a, start=1):
        prev, row = row, np.empty_like(row)
        row[0] = i
        for j, y in enumerate(b, start=1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (x != y))
    return int(row[-1])


def edit_score(
    pred: Sequence[np.ndarray] | np.ndarray, gt: Sequence[np.ndarray] | np.ndarray, background: Sequence[int] = ()
) -> float:
    """MS-TCN's segmental edit score: mean over videos of 1 - levenshtein(segments) / max(#segments)."""
    scores = []
    for p, g in zip(_videos(pred), _videos(gt)):
        a, b = segments(p, background)[0], segments(g, background)[0]
        longest = max(len(a), len(b))
        scores.append(1.0 - _levenshtein(a, b) / longest if longest else 1.0)
    return float(np.mean(scores)) if scores else float("nan")


def cluster_scores(
    preds: Sequence[np.ndarray], gts: Sequence[np.ndarray], overlaps: Sequence[float] = (0.10, 0.25, 0.50)
) -> dict[str, float]:
    """Every segmentation metric of unsupervised cluster predictions against per-frame labels: MoF, F1 and
    mIoU after one Hungarian matching over all videos and after one per video (`*_per_video`), and
    F1@overlap (`f1_at_<pct>`) and Edit of the predictions relabelled by the pooled matching."""
    preds, gts = _videos(preds), _videos(gts)
    flat_p, flat_g = np.concatenate(preds), np.concatenate(gts)
    labelled = flat_g != UNLABELLED
    mapped = [apply_mapping(p, hungarian_match(flat_p[labelled], flat_g[labelled])) for p in preds]
    out = {**segmentation_scores(preds, gts),
           **{f"{k}_per_video": v for k, v in segmentation_scores(preds, gts, per_video=True).items()}}
    out.update({f"f1_at_{round(o * 100):d}": segmental_f1(mapped, gts, o) for o in overlaps})
    out["edit"] = edit_score(mapped, gts)
    return out

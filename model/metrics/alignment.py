"""Evaluation metrics of self-supervised temporal alignment, as the literature computes them.

Every function takes lists of per-video arrays (embeddings (T, D), integer per-frame labels (T,), with -1
meaning "unlabelled") and returns numbers; nothing here reads files. The protocol (DESIGN.md Sec. 3) follows
TCC / LAV / CASA / LA2DS / MASA:

- Kendall's tau: every ordered pair of videos (within an activity when `groups` is given), both subsampled
  by `stride`; each query frame's nearest neighbour by squared Euclidean distance; tau-b between 0..n-1 and
  the neighbour indices (exactly scipy.stats.kendalltau's tau-b, vectorised); NaN pairs dropped and counted.
- Content tau (this project's): the same pairs with the partner played backwards; (tau - that) / 2 is 0 for
  position alone (t/T) and tau for per-frame features (`content_tau`).
- Frame retrieval AP@K: per frame, the share of its K nearest frames from *other* videos with its label;
  mean over the video's frames, then over videos (then over groups).
- Phase classification: the first floor(f * N) training videos (at least one), all their frames; an RBF SVM
  (C=1, gamma='scale', one-vs-one) or a multinomial logistic regression; pooled frame accuracy. With
  `standardize` (default) features are z-scored with statistics of the training frames first: the SVM's
  RBF width and the logistic regression's L2 penalty both depend on per-dimension scale, and raw baselines
  (pixel-like keypoints, DINOv2 features) have very uneven scales.
- Phase progression: K-1 targets per frame, (t - last frame of phase i) / T; ordinary least squares (one
  regression per target; OLS on a multi-output target is exactly that); mean R^2 on pooled validation frames.
- Action recognition: 16 frames at uniform positions per clip, pooled (default: concatenation of the 16
  L2-normalised frame embeddings, which keeps their order), z-scored, multinomial logistic regression.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

from model.inputs.temporal_augment import uniform_positions

log = logging.getLogger(__name__)

Classifier = Literal["svm", "logreg"]
Pooling = Literal["concat", "mean", "meanmax"]
_BLOCK_ELEMENTS = 1 << 24  # entries of one temporary block (distances or signs)


# ----------------------------------------------------------------------------- Kendall's tau
def _tau_b_against_range(nn: np.ndarray) -> np.ndarray:
    """tau-b between 0..n-1 and each column of `nn` (n, V) -> (V,), NaN where undefined (n < 2, constant)."""
    nn = nn.astype(np.int32)
    n, v = nn.shape
    total = n * (n - 1) // 2
    if total == 0:
        return np.full(v, np.nan)
    score = np.zeros(v, dtype=np.int64)
    ties = np.zeros(v, dtype=np.int64)
    rows = np.arange(n)
    block = max(1, _BLOCK_ELEMENTS // max(1, n * v))
    for s in range(0, n, block):
        head = nn[s : s + block]  # (b, V)
        upper = rows[None, :] > rows[s : s + len(head), None]  # (b, n): pairs i < j only
        diff = nn[None, :, :] - head[:, None, :]  # (b, n, V)
        score += (np.sign(diff) * upper[..., None]).sum((0, 1))
        ties += ((diff == 0) & upper[..., None]).sum((0, 1))
    untied = total - ties
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = score / np.sqrt(float(total) * untied)
    tau[untied == 0] = np.nan
    return tau


def _nearest_frames(query: np.ndarray, flat: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """For each query frame (n, D), the index of its nearest frame in each video -> (n, V).

    flat: the V videos' frames one after another (F, D); lengths: (V,) frames per video.
    """
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    width = int(lengths.max())
    cols = np.arange(width)
    q_sq = (query**2).sum(1)[:, None]
    block = max(1, _BLOCK_ELEMENTS // (width * max(len(query), 1)))
    out = np.empty((len(query), len(lengths)), dtype=np.int64)
    for s in range(0, len(lengths), block):
        lens, offs = lengths[s : s + block], starts[s : s + block]
        lo, hi = offs[0], offs[-1] + lens[-1]
        part = flat[lo:hi]
        dist = q_sq + (part**2).sum(1)[None, :] - 2.0 * (query @ part.T)  # (n, F_chunk)
        gather = np.minimum(offs[:, None] - lo + cols[None, :], hi - lo - 1)  # (b, W)
        padded = dist[:, gather]  # (n, b, W)
        padded[:, cols[None, :] >= lens[:, None]] = np.inf
        out[:, s : s + len(lens)] = padded.argmin(-1)
    return out


def kendalls_tau_per_group(
    embeddings: Sequence[np.ndarray], groups: Sequence[str] | None = None, stride: int = 2,
    partners: Sequence[np.ndarray] | None = None,
) -> dict[str, tuple[float, int, int]]:
    """Per group: (mean tau over its valid ordered pairs, number of pairs, number of NaN pairs dropped).

    Pairs are formed only between different videos of the same group (all videos form one group "all"
    when `groups` is None). A group with fewer than two videos has no pairs and a NaN mean. `partners`: per
    video, the embeddings its partners' frames are searched in instead of `embeddings` (e.g. the videos played
    backwards, `content_tau`).
    """
    groups = ["all"] * len(embeddings) if groups is None else list(groups)
    partners = embeddings if partners is None else partners
    if not len(groups) == len(embeddings) == len(partners):
        raise ValueError(f"{len(groups)} groups for {len(embeddings)} videos and {len(partners)} partners")
    result = {}
    for name in sorted(set(groups)):
        rows = [i for i, g in enumerate(groups) if g == name]
        members = [np.asarray(embeddings[i], dtype=np.float64)[::stride] for i in rows]
        searched = members if partners is embeddings else [np.asarray(partners[i], np.float64)[::stride] for i in rows]
        lengths = np.array([len(m) for m in searched])
        flat = np.concatenate(searched)
        taus = []
        for q, query in enumerate(members):
            if len(members) > 1:
                nn = np.delete(_nearest_frames(query, flat, lengths), q, axis=1)
                taus.append(_tau_b_against_range(nn))
        taus = np.concatenate(taus) if taus else np.empty(0)
        valid = taus[~np.isnan(taus)]
        result[name] = (float(valid.mean()) if len(valid) else math.nan, len(taus), int(len(taus) - len(valid)))
    return result


def kendalls_tau(
    embeddings: Sequence[np.ndarray], stride: int = 2, groups: Sequence[str] | None = None
) -> tuple[float, int]:
    """Mean Kendall's tau over ordered pairs of videos (then over groups) and the number of NaN pairs dropped.

    embeddings: per video (T_v, D). groups: optional activity per video; pairs are then formed within an
    activity and the result is the mean over activities of the per-activity means.
    """
    per_group = kendalls_tau_per_group(embeddings, groups, stride)
    means = [m for m, _, _ in per_group.values() if not math.isnan(m)]
    dropped = sum(d for _, _, d in per_group.values())
    return (float(np.mean(means)) if means else math.nan), dropped


def content_tau(tau: dict[str, float], backward: Sequence[np.ndarray], forward: Sequence[np.ndarray],
                groups: Sequence[str] | None = None, stride: int = 2) -> tuple[dict[str, float], dict[str, float]]:
    """The part of Kendall's tau that position cannot give: per group, (tau against partners played
    backwards, (tau - that) / 2).

    tau: per group, Kendall's tau of `forward` (`kendalls_tau_per_group`'s means); forward: per video (T_v, D)
    embeddings; backward: per video, the embeddings of the same video played backwards (its frames reversed in
    time, then embedded: reversed rows for per-frame features, the same t/T for position). Each video's frames
    are matched in every other video of its group played backwards. Features that follow what the frames show
    find the partner's order reversed (tau_reversed near -tau); features that encode position alone find the
    same order (tau_reversed = tau: t/T scores 0.996 both ways). So content tau is 0 for position alone and tau
    for features computed frame by frame; a model scores between the two by how much of its alignment follows
    the frames rather than their place in the video.
    """
    per = kendalls_tau_per_group(forward, groups, stride, partners=backward)
    reversed_ = {g: m for g, (m, _, _) in per.items()}
    return reversed_, {g: (tau[g] - reversed_[g]) / 2 for g in reversed_}


# ----------------------------------------------------------------------------- retrieval
def _knn_other_videos(x: np.ndarray, video: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each frame's k nearest frames (squared Euclidean) among frames of other videos.

    x: (F, D); video: (F,) video id per frame, each video's frames contiguous. Returns (F, k) indices and a
    (F, k) mask of real neighbours (False where a frame has fewer than k frames in other videos). Rows are
    ranked by |x_j|^2 - 2 x_i.x_j, which orders neighbours exactly as the squared distance does.
    """
    import torch

    change = np.flatnonzero(np.diff(video)) + 1
    starts, ends = np.concatenate([[0], change]), np.concatenate([change, [len(video)]])
    if len(np.unique(video)) != len(starts):
        raise ValueError("each video's frames must be contiguous")
    run = np.repeat(np.arange(len(starts)), ends - starts)  # (F,) which run a frame belongs to
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    sq = (xt * xt).sum(1)
    k = min(k, len(x))
    idx = np.empty((len(x), k), dtype=np.int64)
    ok = np.empty((len(x), k), dtype=bool)
    block = max(1, _BLOCK_ELEMENTS // len(x))
    for s in range(0, len(x), block):
        e = min(s + block, len(x))
        d = torch.addmm(sq[None, :], xt[s:e], xt.T, beta=1.0, alpha=-2.0)  # (b, F)
        for r in range(run[s], run[e - 1] + 1):  # a frame never retrieves frames of its own video
            d[max(starts[r], s) - s : min(ends[r], e) - s, starts[r] : ends[r]] = torch.inf
        val, ind = torch.topk(d, k, dim=1, largest=False)
        idx[s:e], ok[s:e] = ind.numpy(), torch.isfinite(val).numpy()
    return idx, ok


def retrieval_precisions(
    embeddings: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    ks: Sequence[int],
    stride: int = 2,
    groups: Sequence[str] | None = None,
) -> dict[int, np.ndarray]:
    """Per K, per video (V,): the mean over its frames of the share of their K nearest frames from other
    videos (of the same group, when given) that carry the same label. Unlabelled frames (label < 0) are
    neither queries nor candidates; a video without labelled frames gets NaN."""
    groups = ["all"] * len(embeddings) if groups is None else list(groups)
    out = {k: np.full(len(embeddings), np.nan) for k in ks}
    for name in sorted(set(groups)):
        members = [i for i, g in enumerate(groups) if g == name]
        frames, lab, vid = [], [], []
        for i in members:
            e, y = np.asarray(embeddings[i])[::stride], np.asarray(labels[i])[::stride]
            if len(e) != len(y):
                raise ValueError(f"video {i}: {len(embeddings[i])} embeddings but {len(labels[i])} labels")
            keep = y >= 0
            frames.append(e[keep]), lab.append(y[keep]), vid.append(np.full(keep.sum(), i))
        x, lab, vid = np.concatenate(frames), np.concatenate(lab), np.concatenate(vid)
        if len(np.unique(vid)) < 2:
            continue
        idx, ok = _knn_other_videos(x, vid, max(ks))
        hits = (lab[idx] == lab[:, None]) & ok
        for k in ks:
            share = hits[:, :k].sum(1) / np.maximum(ok[:, :k].sum(1), 1)
            for i in members:
                sel = vid == i
                if sel.any():
                    out[k][i] = share[sel].mean()
    return out


def _mean_over_groups(values: np.ndarray, groups: Sequence[str] | None) -> float:
    if groups is None:
        return float(np.nanmean(values)) if np.isfinite(values).any() else math.nan
    groups = np.asarray(groups)
    means = [np.nanmean(values[groups == g]) for g in sorted(set(groups)) if np.isfinite(values[groups == g]).any()]
    return float(np.mean(means)) if means else math.nan


def retrieval_ap(
    embeddings: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    k: int,
    stride: int = 2,
    groups: Sequence[str] | None = None,
) -> float:
    """Frame retrieval AP@K: mean over videos (then over groups, when given) of `retrieval_precisions`."""
    return _mean_over_groups(retrieval_precisions(embeddings, labels, [k], stride, groups)[k], groups)


def activity_retrieval(embeddings: Sequence[np.ndarray], activities: Sequence[str], k: int, stride: int = 2) -> float:
    """Multi-activity discriminability (MASA Fig. 3): share of each frame's K nearest frames from other videos
    (of any activity) that belong to its activity; mean over frames, then over videos."""
    codes = {a: i for i, a in enumerate(sorted(set(activities)))}
    labels = [np.full(len(e), codes[a]) for e, a in zip(embeddings, activities)]
    return _mean_over_groups(retrieval_precisions(embeddings, labels, [k], stride)[k], None)


# ----------------------------------------------------------------------------- phase classification
def n_first_videos(n_videos: int, fraction: float) -> int:
    """How many training videos a label fraction uses: floor(fraction * N), at least one."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    # + 1e-9: 0.1 * 30 is 2.9999999999999996 in floating point, and the protocol means 3 videos
    return max(1, math.floor(fraction * n_videos + 1e-9))


def _labelled_frames(embs: Sequence[np.ndarray], labels: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Pooled (N, D) frames and (N,) labels of every labelled frame (label >= 0)."""
    xs, ys = [], []
    for i, (e, y) in enumerate(zip(embs, labels)):
        e, y = np.asarray(e), np.asarray(y)
        if len(e) != len(y):
            raise ValueError(f"video {i}: {len(e)} embeddings but {len(y)} labels")
        xs.append(e[y >= 0]), ys.append(y[y >= 0])
    return np.concatenate(xs).astype(np.float64), np.concatenate(ys)


def make_classifier(classifier: Classifier, *, standardize: bool = True, seed: int = 0):
    """The protocol's classifier as an (unfitted) sklearn pipeline."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    if classifier == "svm":
        model = SVC(C=1.0, kernel="rbf", gamma="scale", decision_function_shape="ovo")
    elif classifier == "logreg":  # lbfgs fits the multinomial (softmax) loss for multi-class targets
        model = LogisticRegression(C=1.0, max_iter=2000, random_state=seed)
    else:
        raise ValueError(f"unknown classifier {classifier!r}; use 'svm' or 'logreg'")
    return make_pipeline(StandardScaler(), model) if standardize else make_pipeline(model)


def fit_classifier(x: np.ndarray, y: np.ndarray, classifier: Classifier, *, standardize: bool = True, seed: int = 0):
    """Fit `classifier` on (N, D) features and (N,) targets; one class only -> a constant predictor."""
    from sklearn.dummy import DummyClassifier

    if len(np.unique(y)) < 2:
        log.warning("only one class (%s) in the training frames: predicting it everywhere", y[0])
        return DummyClassifier(strategy="most_frequent").fit(x, y)
    return make_classifier(classifier, standardize=standardize, seed=seed).fit(x, y)


def phase_predictions(
    train_embs: Sequence[np.ndarray],
    train_labels: Sequence[np.ndarray],
    val_embs: Sequence[np.ndarray],
    fraction: float,
    classifier: Classifier = "svm",
    *,
    standardize: bool = True,
) -> list[np.ndarray]:
    """Per validation video (T_v,): phases predicted by a classifier fitted on the first floor(f*N) videos."""
    n = n_first_videos(len(train_embs), fraction)
    x, y = _labelled_frames(train_embs[:n], train_labels[:n])
    model = fit_classifier(x, y, classifier, standardize=standardize)
    preds = model.predict(np.concatenate(val_embs).astype(np.float64))
    return np.split(preds, np.cumsum([len(e) for e in val_embs])[:-1])


def phase_classification(
    train_embs: Sequence[np.ndarray],
    train_labels: Sequence[np.ndarray],
    val_embs: Sequence[np.ndarray],
    val_labels: Sequence[np.ndarray],
    fraction: float,
    classifier: Classifier = "svm",
    *,
    standardize: bool = True,
) -> float:
    """Pooled frame accuracy over labelled validation frames of a classifier trained on a fraction of videos."""
    preds = phase_predictions(train_embs, train_labels, val_embs, fraction, classifier, standardize=standardize)
    return frame_accuracy(preds, val_labels)


def frame_accuracy(preds: Sequence[np.ndarray], labels: Sequence[np.ndarray]) -> float:
    """Share of labelled frames (label >= 0), pooled over videos, whose prediction equals the label."""
    p, y = np.concatenate(preds), np.concatenate([np.asarray(v) for v in labels])
    keep = y >= 0
    return float((p[keep] == y[keep]).mean()) if keep.any() else math.nan


# ----------------------------------------------------------------------------- phase progression
def progress_targets(labels: np.ndarray, n_phases: int) -> np.ndarray:
    """(T, K-1) targets (t - last frame of phase i) / T for i < K-1, phases numbered 0..K-1 in order.

    The last frame of phase i is the last frame labelled <= i (so a phase missing from a video ends where
    the phases before it end); -1 when no frame is. Unlabelled frames (-1) are ignored.
    """
    labels = np.asarray(labels)
    t = np.arange(len(labels), dtype=np.float64)
    out = np.empty((len(labels), n_phases - 1))
    for i in range(n_phases - 1):
        before = np.flatnonzero((labels >= 0) & (labels <= i))
        last = before[-1] if len(before) else -1
        out[:, i] = (t - last) / len(labels)
    return out


def phase_progression(
    train_embs: Sequence[np.ndarray],
    train_labels: Sequence[np.ndarray],
    val_embs: Sequence[np.ndarray],
    val_labels: Sequence[np.ndarray],
    n_phases: int,
) -> float:
    """Mean over the K-1 progress targets of R^2 on pooled labelled validation frames (labels 0..K-1)."""
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import r2_score

    if n_phases < 2:
        raise ValueError(f"phase progression needs at least 2 phases, got {n_phases}")

    def pooled(embs, labels):
        x, y = [], []
        for e, lab in zip(embs, labels):
            lab = np.asarray(lab)
            keep = lab >= 0
            x.append(np.asarray(e, dtype=np.float64)[keep]), y.append(progress_targets(lab, n_phases)[keep])
        return np.concatenate(x), np.concatenate(y)

    x_train, y_train = pooled(train_embs, train_labels)
    x_val, y_val = pooled(val_embs, val_labels)
    model = LinearRegression().fit(x_train, y_train)
    return float(np.mean(r2_score(y_val, model.predict(x_val), multioutput="raw_values")))


# ----------------------------------------------------------------------------- action recognition
def clip_features(embs: Sequence[np.ndarray], n_frames: int = 16, pooling: Pooling = "concat") -> np.ndarray:
    """(V, D') one vector per clip from its `n_frames` uniformly placed, L2-normalised frame embeddings.

    concat: the frames side by side (D' = n_frames * D, order kept); mean: their mean (D); meanmax: mean and
    element-wise max side by side (2 D).
    """
    out = []
    for e in embs:
        f = np.asarray(e, dtype=np.float64)[uniform_positions(len(e), n_frames)]
        f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
        if pooling == "concat":
            out.append(f.reshape(-1))
        elif pooling == "mean":
            out.append(f.mean(0))
        elif pooling == "meanmax":
            out.append(np.concatenate([f.mean(0), f.max(0)]))
        else:
            raise ValueError(f"unknown pooling {pooling!r}; use 'concat', 'mean' or 'meanmax'")
    return np.stack(out)


def action_predictions(
    train_embs: Sequence[np.ndarray],
    train_acts: Sequence,
    val_embs: Sequence[np.ndarray],
    n_frames: int = 16,
    pooling: Pooling = "concat",
) -> np.ndarray:
    """(V_val,) predicted classes of a z-scored multinomial logistic regression on pooled clip features."""
    x = clip_features(train_embs, n_frames, pooling)
    model = fit_classifier(x, np.asarray(train_acts), "logreg")
    return model.predict(clip_features(val_embs, n_frames, pooling))


def action_recognition(
    train_embs: Sequence[np.ndarray],
    train_acts: Sequence,
    val_embs: Sequence[np.ndarray],
    val_acts: Sequence,
    n_frames: int = 16,
    pooling: Pooling = "concat",
) -> float:
    """Clip-level accuracy of a linear classifier on `n_frames` uniformly sampled frames per clip."""
    preds = action_predictions(train_embs, train_acts, val_embs, n_frames, pooling)
    return float((preds == np.asarray(val_acts)).mean())

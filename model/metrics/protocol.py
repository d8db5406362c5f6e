"""The whole evaluation protocol on one feature set: per-video arrays in, a dictionary of metrics out.

Everything per activity (the literature evaluates one activity at a time) and overall:
- kendalls_tau: pairs within an activity; overall = mean over activities; NaN pairs counted.
- kendalls_tau_reversed, kendalls_tau_content: the same pairs with the partner played backwards, and
  (tau - that) / 2: the part of tau position cannot give (0 for t/T), when the caller passes `backward`.
- activity_retrieval_ap_at_K: neighbours from every activity; overall = mean over videos.
- retrieval_ap_at_K, phase_classification_<clf>_<pct>pct, phase_progression: a classifier / regressor per
  activity, fitted on that activity's training videos (in index order); overall = mean over activities.
- segmentation_kmeans: k-means per activity (k = its number of phases) on validation frames, Hungarian
  matched to phases, pooled over the activity's videos and per video; overall = mean over activities.
- segmental_f1_at_<pct>, edit: MS-TCN metrics of the supervised phase predictions of the first classifier
  at the largest label fraction.
- action_recognition: one clip per sequence, classes = activities (needs two or more activities).
- segment_action_recognition: one clip per labelled run of frames, classes = phase labels (MASA Tab. 3
  repurposes Penn Action phases as actions this way).
Metrics that need per-frame labels are recorded in `skipped` with the reason when there are none.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from model.metrics import alignment as M
from model.metrics import segmentation as S


@dataclass(frozen=True)
class ProtocolParams:
    """Knobs of the protocol (params.yaml `evaluate.protocol`).

    classifier_train_stride: phase classifiers are fitted on every n-th training frame (1 = all, the
    literature's protocol); an RBF SVM's cost grows faster than quadratically with its training frames,
    so long-video datasets (IKEA ASM: ~100k training frames) may set it higher. Evaluation always uses
    every frame.
    """

    tau_stride: int
    retrieval_stride: int
    retrieval_ks: tuple[int, ...]
    activity_retrieval_ks: tuple[int, ...]
    fractions: tuple[float, ...]
    classifiers: tuple[M.Classifier, ...]
    classifier_train_stride: int
    standardize: bool
    action_frames: int
    action_pooling: M.Pooling
    segment_overlaps: tuple[float, ...]


@dataclass(frozen=True)
class VideoSet:
    """Videos of one split: ids, activity per video, (T_v, D) features, (T_v,) labels (-1 = none) or None."""

    ids: tuple[str, ...]
    activities: tuple[str, ...]
    embeddings: list[np.ndarray]
    labels: list[np.ndarray] | None = None

    def of(self, activity: str) -> VideoSet:
        keep = [i for i, a in enumerate(self.activities) if a == activity]
        labels = None if self.labels is None else [self.labels[i] for i in keep]
        embeddings = [self.embeddings[i] for i in keep]
        return VideoSet(tuple(self.ids[i] for i in keep), (activity,) * len(keep), embeddings, labels)

    def with_embeddings(self, embeddings: list[np.ndarray]) -> VideoSet:
        return replace(self, embeddings=embeddings)


@dataclass
class ProtocolResult:
    metrics: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    confusion: tuple[list[str], np.ndarray] | None = None  # action recognition: class names, (C, C) counts

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.seconds[name] += time.perf_counter() - start


def pct(fraction: float) -> str:
    return f"{round(fraction * 100):d}pct"


def summary(per_activity: dict[str, float], overall: float | None = None) -> dict[str, Any]:
    """{"overall": mean over activities (or the given value), "per_activity": {...}}."""
    finite = [v for v in per_activity.values() if v is not None and not math.isnan(v)]
    if overall is None:
        overall = float(np.mean(finite)) if finite else math.nan
    return {"overall": overall, "per_activity": dict(sorted(per_activity.items()))}


def evaluate_features(train: VideoSet, val: VideoSet, params: ProtocolParams, *, seed: int = 0,
                      backward: Sequence[np.ndarray] | None = None) -> ProtocolResult:
    """Every metric of the protocol for one feature set (train: classifiers' data; val: evaluated videos);
    with `backward` (per val video, its features when it is played backwards) also the content tau
    (`model.metrics.alignment.content_tau`).

    Runs with one BLAS / OpenMP thread: the protocol is many small fits and distance blocks, where threads
    cost more than they save (3-100x slower with two threads on a busy two-core machine, measured).
    """
    with single_threaded():
        return _evaluate(train, val, params, seed, backward)


@contextmanager
def single_threaded() -> Iterator[None]:
    """Limit every BLAS / OpenMP pool to one thread. threadpoolctl limits only the libraries loaded when
    it is entered, so the numeric libraries the metrics use (scipy's own OpenBLAS, torch's OpenMP) are
    imported first."""
    import scipy.linalg  # noqa: F401
    import sklearn.cluster  # noqa: F401
    import sklearn.linear_model  # noqa: F401
    import sklearn.svm  # noqa: F401
    import torch  # noqa: F401
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def _evaluate(train: VideoSet, val: VideoSet, params: ProtocolParams, seed: int,
              backward: Sequence[np.ndarray] | None) -> ProtocolResult:
    res = ProtocolResult()
    with res.timed("kendalls_tau"):
        per = M.kendalls_tau_per_group(val.embeddings, val.activities, params.tau_stride)
        tau = {a: m for a, (m, _, _) in per.items()}
        res.metrics["kendalls_tau"] = {
            **summary(tau),
            "pairs": sum(n for _, n, _ in per.values()),
            "dropped_pairs": sum(d for _, _, d in per.values()),
        }
    if backward is not None:
        with res.timed("kendalls_tau_content"):
            reversed_, content = M.content_tau(tau, backward, val.embeddings, val.activities, params.tau_stride)
            res.metrics["kendalls_tau_reversed"] = summary(reversed_)
            res.metrics["kendalls_tau_content"] = summary(content)
    _activity_retrieval(val, params, res)
    _action_recognition(train, val, params, res, seed)
    if train.labels is None or val.labels is None:
        for name in _label_metric_names(params):
            res.metrics[name] = None
            res.skipped[name] = "no per-frame labels in this dataset"
        return res
    _phase_metrics(train, val, params, res, seed)
    _segment_action_recognition(train, val, params, res)
    return res


def _label_metric_names(params: ProtocolParams) -> list[str]:
    names = [f"retrieval_ap_at_{k}" for k in params.retrieval_ks]
    names += [f"phase_classification_{c}_{pct(f)}" for c in params.classifiers for f in params.fractions]
    names += ["phase_progression", "segmentation_kmeans", "edit", "segment_action_recognition"]
    return names + [_f1_key(o) for o in params.segment_overlaps]


def _f1_key(overlap: float) -> str:
    return f"segmental_f1_at_{round(overlap * 100):d}"


def _activity_retrieval(val: VideoSet, params: ProtocolParams, res: ProtocolResult) -> None:
    acts = np.asarray(val.activities)
    with res.timed("activity_retrieval"):
        codes = {a: i for i, a in enumerate(sorted(set(acts)))}
        labels = [np.full(len(e), codes[a]) for e, a in zip(val.embeddings, acts)]
        ks, stride = params.activity_retrieval_ks, params.retrieval_stride
        per_video = M.retrieval_precisions(val.embeddings, labels, ks, stride)
    for k, values in per_video.items():
        per = {a: float(np.nanmean(values[acts == a])) for a in codes}
        res.metrics[f"activity_retrieval_ap_at_{k}"] = summary(per, float(np.nanmean(values)))


def _action_recognition(train: VideoSet, val: VideoSet, params: ProtocolParams, res: ProtocolResult, seed: int) -> None:
    classes = sorted(set(train.activities))
    if len(classes) < 2:
        res.metrics["action_recognition"] = None
        res.skipped["action_recognition"] = f"needs two or more activities, the training split has {classes}"
        return
    from sklearn.metrics import confusion_matrix

    with res.timed("action_recognition"):
        preds = M.action_predictions(
            train.embeddings, train.activities, val.embeddings, params.action_frames, params.action_pooling
        )
    truth = np.asarray(val.activities)
    per = {a: float((preds[truth == a] == a).mean()) for a in sorted(set(truth))}
    res.metrics["action_recognition"] = {
        **summary(per, float((preds == truth).mean())),
        "n_train_clips": len(train.embeddings),
        "n_val_clips": len(val.embeddings),
    }
    names = sorted(set(classes) | set(truth))
    res.confusion = (names, confusion_matrix(truth, preds, labels=names))


def phase_order(labels: list[np.ndarray]) -> dict[int, int]:
    """Label id -> phase number 0..K-1, phases ordered by their mean relative onset in these videos."""
    onsets = defaultdict(list)
    for y in labels:
        for lab in np.unique(y[y >= 0]):
            onsets[int(lab)].append(np.flatnonzero(y == lab)[0] / len(y))
    ordered = sorted(onsets, key=lambda lab: (np.mean(onsets[lab]), lab))
    return {lab: i for i, lab in enumerate(ordered)}


def _renumber(labels: list[np.ndarray], order: dict[int, int]) -> list[np.ndarray]:
    return [np.array([order.get(int(v), -1) for v in y], dtype=np.int64) for y in labels]


def _phase_metrics(train: VideoSet, val: VideoSet, params: ProtocolParams, res: ProtocolResult, seed: int) -> None:
    per: dict[str, dict[str, float]] = defaultdict(dict)
    kmeans: dict[str, dict[str, float]] = {}
    for act in sorted(set(val.activities)):
        tr, va = train.of(act), val.of(act)
        if not tr.embeddings or not any((y >= 0).any() for y in va.labels):
            continue
        with res.timed("retrieval_ap"):
            ap = M.retrieval_precisions(va.embeddings, va.labels, params.retrieval_ks, params.retrieval_stride)
        for k, values in ap.items():
            per[f"retrieval_ap_at_{k}"][act] = float(np.nanmean(values)) if np.isfinite(values).any() else math.nan
        _classification(tr, va, params, act, per, res)
        with res.timed("phase_progression"):
            order = phase_order(tr.labels)
            if len(order) >= 2:
                per["phase_progression"][act] = M.phase_progression(
                    tr.embeddings, _renumber(tr.labels, order), va.embeddings, _renumber(va.labels, order), len(order)
                )
        with res.timed("segmentation_kmeans"):
            kmeans[act] = _kmeans_segmentation(va, seed)
    for name, values in per.items():
        res.metrics[name] = summary(values)
    kmeans = {a: s for a, s in sorted(kmeans.items()) if s}
    if kmeans:
        keys = next(iter(kmeans.values()))
        res.metrics["segmentation_kmeans"] = {key: float(np.mean([s[key] for s in kmeans.values()])) for key in keys}
        res.metrics["segmentation_kmeans"]["per_activity"] = kmeans
    for name in _label_metric_names(params):
        if name not in res.metrics and name != "segment_action_recognition":
            res.metrics[name] = None
            res.skipped[name] = "no activity has labelled frames in both splits and two or more phases"


def _classification(
    tr: VideoSet, va: VideoSet, params: ProtocolParams, act: str, per: dict, res: ProtocolResult
) -> None:
    for clf in params.classifiers:
        for frac in params.fractions:
            with res.timed(f"phase_classification_{clf}"):
                step = params.classifier_train_stride
                preds = M.phase_predictions(
                    [e[::step] for e in tr.embeddings], [y[::step] for y in tr.labels], va.embeddings, frac, clf,
                    standardize=params.standardize,
                )
            per[f"phase_classification_{clf}_{pct(frac)}"][act] = M.frame_accuracy(preds, va.labels)
            if clf == params.classifiers[0] and frac == max(params.fractions):
                with res.timed("segmental_f1_edit"):
                    for o in params.segment_overlaps:
                        per[_f1_key(o)][act] = S.segmental_f1(preds, va.labels, o)
                    per["edit"][act] = S.edit_score(preds, va.labels)


def _kmeans_segmentation(va: VideoSet, seed: int) -> dict[str, float]:
    """k-means clusters of the validation frames (k = number of phases present), Hungarian-matched."""
    from sklearn.cluster import KMeans

    x = np.concatenate(va.embeddings).astype(np.float64)
    labels = np.concatenate(va.labels)
    n_phases = len(np.unique(labels[labels >= 0]))
    if n_phases < 2 or len(x) < n_phases:
        return {}
    clusters = KMeans(n_clusters=n_phases, n_init=4, random_state=seed).fit_predict(x)
    cuts = np.cumsum([len(e) for e in va.embeddings])[:-1]
    return S.cluster_scores(np.split(clusters, cuts), va.labels)


def labelled_runs(embs: list[np.ndarray], labels: list[np.ndarray], activities) -> tuple[list, list, list]:
    """Clips = maximal runs of one label (>= 0): (clip embeddings, clip labels, clip activities)."""
    clips, classes, acts = [], [], []
    for e, y, a in zip(embs, labels, activities):
        for lab, s, t in zip(*S.segments(y)):
            clips.append(e[s:t]), classes.append(int(lab)), acts.append(a)
    return clips, classes, acts


def _segment_action_recognition(train: VideoSet, val: VideoSet, params: ProtocolParams, res: ProtocolResult) -> None:
    tr_clips, tr_y, _ = labelled_runs(train.embeddings, train.labels, train.activities)
    va_clips, va_y, va_act = labelled_runs(val.embeddings, val.labels, val.activities)
    if len(set(tr_y)) < 2 or not va_clips:
        res.metrics["segment_action_recognition"] = None
        res.skipped["segment_action_recognition"] = "needs two or more labelled segment classes"
        return
    with res.timed("segment_action_recognition"):
        preds = M.action_predictions(tr_clips, tr_y, va_clips, params.action_frames, params.action_pooling)
    truth, va_act = np.asarray(va_y), np.asarray(va_act)
    per = {a: float((preds[va_act == a] == truth[va_act == a]).mean()) for a in sorted(set(va_act))}
    res.metrics["segment_action_recognition"] = {
        **summary(per, float((preds == truth).mean())),
        "n_train_clips": len(tr_clips),
        "n_val_clips": len(va_clips),
    }

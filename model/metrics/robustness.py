"""Robustness of a trained model to missing and noisy keypoints at test time (LA2DS Tables 3-4).

The validation sequences' `joints_2d` are perturbed (`model.metrics.perturb`), re-embedded through the trained
model, and scored with classifiers fitted on the training sequences embedded clean by the same model
(LA2DS's "C => N": trained on clean keypoints, tested on perturbed ones; no fine-tuning). Setting p = 0
re-embeds the clean keypoints through the same path, the reference the drops are compared to.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from model.metrics import alignment as M
from model.metrics.perturb import add_keypoint_noise, drop_limbs, limb_groups
from model.metrics.protocol import ProtocolParams, VideoSet, pct, single_threaded
from pipeline.skeletons.layouts import Skeleton

log = logging.getLogger(__name__)
JOINTS = "joints_2d"
Derive = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


class Embedder(Protocol):
    """What `stages.train.load_embedder` returns: the (artifact, array) inputs it reads, and `embed` of one
    sequence's arrays keyed by array name -> (T, D). Models trained per activity need the activity; an
    embedder may also offer `embed_many(items, activities)`, which `embed_sequences` uses to batch."""

    inputs: tuple[tuple[str, str], ...]

    def embed(self, arrays: dict[str, np.ndarray], activity: str | None = None) -> np.ndarray: ...


def embed_sequences(
    embedder: Embedder,
    items: Sequence[dict[str, np.ndarray]],
    ids: Sequence[str],
    activities: Sequence[str],
    batch_size: int = 16,
    progress: Callable[[int], object] | None = None,
) -> list[np.ndarray]:
    """Per sequence, its (T_i, D) float32 embedding; batches of similar length when `embed_many` exists.
    `progress(n)` after each batch of n sequences (e.g. a tqdm bar's `update`)."""
    many = getattr(embedder, "embed_many", None)
    order = sorted(range(len(items)), key=lambda i: len(next(iter(items[i].values()))))
    out: list[np.ndarray] = [np.empty(0)] * len(items)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        try:
            if many is not None:
                embs = many([items[i] for i in chunk], [activities[i] for i in chunk])
            else:
                embs = [embedder.embed(items[i], activity=activities[i]) for i in chunk]
        except Exception as err:  # add which sequences failed; the error itself propagates
            raise RuntimeError(f"embedding sequences {[ids[i] for i in chunk]} failed: {err}") from err
        for i, emb in zip(chunk, embs):
            emb = np.asarray(emb, dtype=np.float32)
            n = len(next(iter(items[i].values())))
            if emb.ndim != 2 or len(emb) != n:
                raise ValueError(f"embedder returned shape {emb.shape} for sequence {ids[i]} of {n} frames")
            out[i] = emb
        if progress is not None:
            progress(len(chunk))
    return out


@dataclass(frozen=True)
class RobustnessParams:
    """drop_probabilities: per-frame probability of losing one limb/finger (LA2DS Tab. 3 uses 0, .25, .5, 1);
    noise_stds: Gaussian keypoint noise, as a fraction of the sequence's body size; classifier: the phase
    classifier (fitted on clean training embeddings, all training videos)."""

    drop_probabilities: tuple[float, ...]
    noise_stds: tuple[float, ...]
    classifier: M.Classifier

    @property
    def settings(self) -> int:
        """How many perturbation settings `robustness` scores: it embeds the validation sequences once for each."""
        return len(self.drop_probabilities) + len(self.noise_stds)


def _scores(
    train: VideoSet, val: VideoSet, params: ProtocolParams, classifier: M.Classifier
) -> dict[str, float | None]:
    """Kendall's tau, phase classification at 100% (mean over activities), action recognition."""
    with single_threaded():  # many small fits: see model.metrics.protocol.evaluate_features
        return _scores_single_thread(train, val, params, classifier)


def _scores_single_thread(train, val, params, classifier) -> dict[str, float | None]:
    tau, _ = M.kendalls_tau(val.embeddings, params.tau_stride, val.activities)
    out: dict[str, float | None] = {"kendalls_tau": tau, f"phase_classification_{classifier}_100pct": None}
    if train.labels is not None and val.labels is not None:
        accs = []
        for act in sorted(set(val.activities)):
            tr, va = train.of(act), val.of(act)
            if tr.embeddings:
                step = params.classifier_train_stride
                preds = M.phase_predictions(
                    [e[::step] for e in tr.embeddings], [y[::step] for y in tr.labels], va.embeddings, 1.0,
                    classifier, standardize=params.standardize,
                )
                accs.append(M.frame_accuracy(preds, va.labels))
        finite = [a for a in accs if not math.isnan(a)]
        out[f"phase_classification_{classifier}_100pct"] = float(np.mean(finite)) if finite else None
    out["action_recognition"] = None
    if len(set(train.activities)) >= 2:
        out["action_recognition"] = M.action_recognition(
            train.embeddings, train.activities, val.embeddings, val.activities,
            params.action_frames, params.action_pooling,
        )
    return out


def _perturbed(inputs: Sequence[dict[str, np.ndarray]], perturb, seed: Sequence[int],
               derive: Derive | None = None) -> list[dict[str, np.ndarray]]:
    """The inputs with joints_2d perturbed, each sequence with its own seeded generator, then `derive`d (the
    arrays made from the joints, e.g. heatmaps, remade from the perturbed ones)."""
    out = [{**arrays, JOINTS: perturb(arrays[JOINTS], np.random.default_rng([*seed, i]))}
           for i, arrays in enumerate(inputs)]
    return out if derive is None else [derive(arrays) for arrays in out]


def robustness(
    embedder: Embedder,
    train: VideoSet,
    val: VideoSet,
    train_inputs: Sequence[dict[str, np.ndarray]],
    val_inputs: Sequence[dict[str, np.ndarray]],
    layout: Skeleton,
    params: RobustnessParams,
    protocol: ProtocolParams,
    *,
    seed: int = 0,
    derive: Derive | None = None,
    progress: Callable[[int], object] | None = None,
) -> dict[str, dict[str, dict[str, float | None]]]:
    """{"drop_limb": {"p25": scores, ...}, "keypoint_noise": {"std5pct": scores, ...}}.

    train, val: the splits (ids, activities, labels); train_inputs, val_inputs: per sequence, the embedder's
    input arrays by name (must include joints_2d (T, K, 3)). Classifiers are fitted on the training
    sequences embedded clean through the same model, so clean and perturbed features come from one path.
    derive: for a model that reads arrays made from the joints (LA2DS's heatmaps), remakes them from the
    perturbed joints, so the perturbation reaches the model as a pose estimator's error would.
    progress(n): after every n sequences embedded, `params.settings` passes over the validation sequences
    and one over the training sequences in all.
    """
    groups = limb_groups(layout)
    train = train.with_embeddings(embed_sequences(embedder, train_inputs, train.ids, train.activities,
                                                  progress=progress))
    settings = [
        ("drop_limb", f"p{round(p * 100)}", (seed, 0, j), lambda x, rng, p=p: drop_limbs(x, groups, p, rng))
        for j, p in enumerate(params.drop_probabilities)
    ] + [
        ("keypoint_noise", f"std{pct(s)}", (seed, 1, j), lambda x, rng, s=s: add_keypoint_noise(x, s, layout, rng))
        for j, s in enumerate(params.noise_stds)
    ]
    out: dict[str, dict[str, dict[str, float | None]]] = {"drop_limb": {}, "keypoint_noise": {}}
    for kind, name, rng_key, perturb in settings:
        embs = embed_sequences(embedder, _perturbed(val_inputs, perturb, rng_key, derive), val.ids, val.activities,
                               progress=progress)
        out[kind][name] = _scores(train, val.with_embeddings(embs), protocol, params.classifier)
        log.info("robustness: %s %s -> %s", kind, name, out[kind][name])
    return out

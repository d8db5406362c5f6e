"""model.metrics.robustness: batched embedding in the callers' order with progress, and the robustness study's
passes (the training videos once, the validation videos once per perturbation setting)."""

from __future__ import annotations

import numpy as np
import pytest

from model.metrics.protocol import ProtocolParams, VideoSet
from model.metrics.robustness import JOINTS, RobustnessParams, _scores, embed_sequences, robustness
from pipeline.skeletons.layouts import get_layout
from tests.repo_params import repo_params


class JointsEmbedder:
    """Embeds a sequence as its joints' x, y per frame (T, 2K); records the lengths of each `embed_many` batch."""

    inputs = (("keypoints", JOINTS),)

    def __init__(self, short_by: int = 0):
        self.batches: list[list[int]] = []
        self.short_by = short_by

    def embed(self, arrays, activity=None):
        joints = np.asarray(arrays[JOINTS], np.float32)
        return joints[: len(joints) - self.short_by, :, :2].reshape(len(joints) - self.short_by, -1)

    def embed_many(self, items, activities):
        self.batches.append([len(item[JOINTS]) for item in items])
        return [self.embed(item, act) for item, act in zip(items, activities)]


def _videos(lengths, activities, seed=0):
    """Per video, joints (T, 13, 3) on a path that depends on the activity (so the phases and the activity can
    be read from them), and per-frame phase labels 0-2 by thirds of the video."""
    rng = np.random.default_rng(seed)
    inputs, labels = [], []
    for n, act in zip(lengths, activities):
        t = np.linspace(0.0, 1.0, n)[:, None]
        base = rng.normal(0.5, 0.1, (1, 13))
        x = base + 0.2 * np.sin(np.pi * t * (1 + activities.index(act) % 2) + np.arange(13))
        y = base + 0.2 * t * (1 if act == "a" else -1)
        inputs.append({JOINTS: np.stack([x, y, np.ones_like(x)], -1).astype(np.float32)})
        labels.append(np.minimum(3 * np.arange(n) // n, 2))
    return inputs, labels


def test_embed_sequences_batches_by_length_keeps_the_callers_order_and_reports_progress():
    inputs, _ = _videos([5, 2, 7, 3, 6], ["a"] * 5)
    embedder, done = JointsEmbedder(), []
    out = embed_sequences(embedder, inputs, list("vwxyz"), ["a"] * 5, batch_size=2, progress=done.append)
    assert embedder.batches == [[2, 3], [5, 6], [7]]
    assert done == [2, 2, 1]
    for item, emb in zip(inputs, out):
        np.testing.assert_array_equal(emb, embedder.embed(item))


def test_embed_sequences_names_the_sequence_whose_embedding_has_the_wrong_length():
    inputs, _ = _videos([4, 6], ["a", "a"])
    with pytest.raises(ValueError, match=r"shape \(3, 26\) for sequence v of 4 frames"):
        embed_sequences(JointsEmbedder(short_by=1), inputs, ["v", "w"], ["a", "a"], batch_size=1)


def test_robustness_embeds_training_videos_once_and_validation_videos_once_per_setting():
    acts = ["a", "b"] * 4
    train_inputs, train_labels = _videos([20, 24, 22, 26, 21, 25, 23, 27], acts, seed=1)
    val_inputs, val_labels = _videos([22, 23, 24, 25], acts[:4], seed=2)
    train = VideoSet(tuple(f"t{i}" for i in range(8)), tuple(acts), [], train_labels)
    val = VideoSet(tuple(f"v{i}" for i in range(4)), tuple(acts[:4]), [], val_labels)
    params = RobustnessParams(drop_probabilities=(0.0, 1.0), noise_stds=(0.1,), classifier="svm")
    protocol = repo_params("evaluate.protocol", ProtocolParams)
    embedder, done = JointsEmbedder(), []

    out = robustness(embedder, train, val, train_inputs, val_inputs, get_layout("penn13"), params, protocol,
                     progress=done.append)

    assert params.settings == 3 and sum(done) == len(train_inputs) + 3 * len(val_inputs)
    assert set(out) == {"drop_limb", "keypoint_noise"} and set(out["drop_limb"]) == {"p0", "p100"}
    clean = _scores(train.with_embeddings([embedder.embed(x) for x in train_inputs]),
                    val.with_embeddings([embedder.embed(x) for x in val_inputs]), protocol, "svm")
    assert out["drop_limb"]["p0"] == clean  # p = 0 re-embeds the clean joints: the reference the drops compare to
    assert out["drop_limb"]["p100"]["kendalls_tau"] < clean["kendalls_tau"]  # every frame lost a limb

"""Pieces of the protocol orchestration (model.metrics.protocol) that the end-to-end test does not pin down."""

from __future__ import annotations

import numpy as np

from model.metrics.protocol import (
    ProtocolParams,
    VideoSet,
    evaluate_features,
    labelled_runs,
    phase_order,
)
from tests.repo_params import repo_params


def test_phase_order_follows_mean_onset_not_label_ids():
    labels = [np.array([7, 7, 3, 3, 5, 5]), np.array([7, 3, 3, 3, 5, 5])]
    assert phase_order(labels) == {7: 0, 3: 1, 5: 2}


def test_labelled_runs_are_the_clips_of_segment_action_recognition():
    emb = np.arange(8)[:, None].astype(float)
    clips, classes, acts = labelled_runs([emb], [np.array([-1, 2, 2, 4, 4, 4, -1, 2])], ["a"])
    assert classes == [2, 4, 2] and acts == ["a"] * 3
    assert [c[:, 0].tolist() for c in clips] == [[1, 2], [3, 4, 5], [7]]


def test_video_set_selects_one_activity_in_order():
    vs = VideoSet(("x", "y", "z"), ("a", "b", "a"), [np.zeros((2, 1)), np.ones((2, 1)), np.full((2, 1), 2.0)],
                  [np.zeros(2, int)] * 3)
    sub = vs.of("a")
    assert sub.ids == ("x", "z") and [e[0, 0] for e in sub.embeddings] == [0.0, 2.0] and len(sub.labels) == 2


def test_single_activity_without_labels_reports_what_it_can():
    rng = np.random.default_rng(0)
    embs = [np.linspace(0, 1, 20)[:, None] + rng.normal(0, 0.01, (20, 1)) for _ in range(4)]
    vs = VideoSet(("a", "b", "c", "d"), ("act",) * 4, embs, None)
    res = evaluate_features(vs, vs, repo_params("evaluate.protocol", ProtocolParams))
    assert res.metrics["kendalls_tau"]["overall"] > 0.9
    assert res.metrics["action_recognition"] is None and "two or more activities" in res.skipped["action_recognition"]
    assert res.metrics["phase_progression"] is None and res.skipped["phase_progression"]

"""Known answers of the segmentation metrics, on hand-worked examples and on real label files."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from model.metrics import segmentation as S


def test_hungarian_recovers_a_permuted_labelling_exactly():
    rng = np.random.default_rng(0)
    gt = np.repeat(rng.permutation(6), rng.integers(5, 30, size=6))
    perm = np.array([3, 5, 0, 1, 4, 2]) + 10  # cluster ids need not be class ids
    pred = perm[gt]
    mapping = S.hungarian_match(pred, gt)
    assert mapping == {int(perm[c]): c for c in range(6)}
    assert S.segmentation_scores(pred, gt) == {"mof": 1.0, "f1": 1.0, "miou": 1.0}


def test_extra_clusters_stay_unmatched_and_count_as_wrong():
    gt = np.array([0, 0, 0, 1, 1, 1])
    pred = np.array([7, 7, 8, 9, 9, 9])  # 3 clusters, 2 classes: cluster 8 has no class
    mapped = S.apply_mapping(pred, S.hungarian_match(pred, gt))
    assert mapped.tolist() == [0, 0, S.UNLABELLED - 1, 1, 1, 1]
    assert S.segmentation_scores(pred, gt)["mof"] == pytest.approx(5 / 6)


def test_miou_by_hand():
    gt = np.array([0, 0, 0, 0, 1, 1])
    pred = np.array([0, 0, 0, 1, 1, 1])
    # class 0: inter 3, union 4; class 1: inter 2, union 3
    assert S.miou(pred, gt) == pytest.approx((3 / 4 + 2 / 3) / 2)


def test_pooled_and_per_video_matching_differ_when_clusters_swap_between_videos():
    gt = [np.array([0, 0, 1, 1]), np.array([0, 0, 1, 1])]
    pred = [np.array([5, 5, 6, 6]), np.array([6, 6, 5, 5])]  # video 2 swaps the cluster ids
    assert S.segmentation_scores(pred, gt, per_video=True)["mof"] == 1.0
    assert S.segmentation_scores(pred, gt)["mof"] == 0.5


def test_segments_drop_background_and_unlabelled_runs():
    labels, starts, ends = S.segments(np.array([-1, -1, 2, 2, 0, 0, 3, 2]), background=[0])
    assert labels.tolist() == [2, 3, 2] and starts.tolist() == [2, 6, 7] and ends.tolist() == [4, 7, 8]


def test_segmental_f1_on_a_hand_worked_example():
    gt = np.array([0] * 10 + [1] * 10 + [2] * 10)
    pred = np.array([0] * 10 + [1] * 4 + [2] * 16)
    # pred segments: 0 [0,10) IoU 1 -> tp; 1 [10,14) IoU 4/10 = 0.4; 2 [14,30) IoU 10/16 = 0.625
    # F1@10: 3 tp -> 1.0; F1@50: tp = {0, 2}, fp = {1}, fn = {1} -> P = R = 2/3
    assert S.segmental_f1(pred, gt, 0.10) == pytest.approx(1.0)
    assert S.segmental_f1(pred, gt, 0.50) == pytest.approx(2 / 3)
    assert S.segmental_f1(pred, gt, 0.70) == pytest.approx(2 * (1 / 3) * (1 / 3) / (2 / 3))  # only segment 0


def test_segmental_f1_counts_a_duplicate_hit_as_false_positive():
    gt = np.array([1] * 10)
    pred = np.array([1] * 5 + [2] + [1] * 4)  # two segments of label 1 aim at the same ground truth
    # [0,5) IoU 0.5 -> tp; [5,6) label 2 -> fp; [6,10) IoU 0.4 < 0.5 -> fp -> P = 1/3, R = 1
    assert S.segmental_f1(pred, gt, 0.25) == pytest.approx(2 * (1 / 3) / (1 / 3 + 1))


def test_edit_score_on_hand_worked_examples():
    gt = np.array([0, 0, 1, 1, 2, 2])
    assert S.edit_score(gt, gt) == 1.0
    assert S.edit_score(np.array([0, 0, 2, 2, 2, 2]), gt) == pytest.approx(1 - 1 / 3)  # one deletion
    assert S.edit_score(np.array([0, 1, 0, 1, 2, 2]), gt) == pytest.approx(1 - 2 / 5)  # [0 1 0 1 2] vs [0 1 2]
    assert S.edit_score([gt, np.array([0, 0, 2, 2, 2, 2])], [gt, gt]) == pytest.approx((1 + 2 / 3) / 2)


def _ikea_frame_labels(path: Path) -> dict[str, np.ndarray]:
    segs = defaultdict(list)
    with path.open() as fh:
        for row in csv.DictReader(fh):
            span = (int(row["start_frame"]), int(row["end_frame_inclusive"]), int(row["gt_label"]))
            segs[row["case_name"]].append(span)
    out = {}
    for name, rows in segs.items():
        labels = np.full(max(e for _, e, _ in rows) + 1, -1, dtype=np.int64)
        for start, end, lab in rows:
            labels[start : end + 1] = lab
        out[name] = labels
    return out


def _egoprocel_frame_labels(path: Path) -> dict[str, np.ndarray]:
    out = {}
    for task in json.loads(path.read_text()).values():
        columns = (task["handles"], task["hdl_actions"], task["hdl_start_times"], task["hdl_end_times"])
        for handle, actions, starts, ends in zip(*columns):
            labels = np.full(int(max(ends)), -1, dtype=np.int64)
            for act, s, e in zip(actions, starts, ends):  # half-open [start, end): each end is the next start
                labels[int(s) : int(e)] = int(act)
            out[handle] = labels
    return out


def _shift(labels: np.ndarray, by: int) -> np.ndarray:
    """pred[t] = labels[t - by] (the first `by` frames repeat frame 0)."""
    return np.concatenate([np.repeat(labels[:1], by), labels[:-by]])


def _direct_accuracy(pred: list[np.ndarray], gt: list[np.ndarray]) -> float:
    same = total = 0
    for p, g in zip(pred, gt):
        for a, b in zip(p.tolist(), g.tolist()):
            if b >= 0:
                same += a == b
                total += 1
    return same / total


@pytest.mark.realdata
@pytest.mark.parametrize("source", ["ikea_asm", "egoprocel"])
def test_real_label_files_give_mof_one_against_themselves_and_the_counted_value_when_shifted(source, shared_data):
    files = {"ikea_asm": "ikea_asm/ikea_asm_test_gt_segments.csv", "egoprocel": "egoprocel/egoprocel.json"}
    path = shared_data / files[source]
    if not path.is_file():
        pytest.skip(f"real label file {path} is absent")
    reader = _ikea_frame_labels if source == "ikea_asm" else _egoprocel_frame_labels
    videos = list(reader(path).values())[:12]
    assert S.segmentation_scores(videos, videos) == {"mof": 1.0, "f1": 1.0, "miou": 1.0}
    shifted = [_shift(v, 5) for v in videos]
    # Segments are far longer than 5 frames, so the identity is the best matching and MoF is plain accuracy.
    assert S.segmentation_scores(shifted, videos)["mof"] == pytest.approx(_direct_accuracy(shifted, videos))
    assert S.segmentation_scores(shifted, videos)["mof"] < 1.0
    assert S.edit_score(shifted, videos) == pytest.approx(1.0)  # a shift keeps the order of segments


def test_cluster_scores_of_a_relabelled_truth_are_perfect_and_drop_with_a_shift():
    from model.metrics.segmentation import cluster_scores

    gts = [np.array([0, 0, 1, 1, 1, 2, 2]), np.array([0, 1, 1, 2, 2, 2])]
    perfect = cluster_scores([(g + 1) % 3 + 7 for g in gts], gts)
    assert all(v == 1.0 for v in perfect.values()), perfect
    shifted = cluster_scores([np.roll(g, 1) for g in gts], gts)
    assert shifted["mof"] < 1.0 and shifted["edit"] <= 1.0
    assert set(perfect) >= {"mof", "f1", "miou", "mof_per_video", "f1_at_10", "f1_at_25", "f1_at_50", "edit"}

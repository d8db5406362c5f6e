import json

import numpy as np
import pytest

from pipeline.datasets import DatasetError
from pipeline.datasets.h2o import index_rows, read_action_labels, read_split
from pipeline.manifest import DatasetSpec

HEADER = "id path action_label start_act end_act start_frame end_frame\n"


def make_release(root, sequences, n=12, with_rgb=True):
    for path in sequences:
        cam = root / path / "cam4"
        (cam / "hand_pose").mkdir(parents=True)
        if with_rgb:
            (cam / "rgb").mkdir()
        for i in range(n):
            (cam / "hand_pose" / f"{i:06d}.txt").write_text(" ".join(["1"] + ["0.1"] * 63 + ["1"] + ["0.2"] * 63))
            if with_rgb:
                (cam / "rgb" / f"{i:06d}.png").write_bytes(b"png")


def spec(tmp_path, labels, split, fps=30.0):
    return DatasetSpec(name="h2o", kind="h2o", root=tmp_path / "h2o", fps=fps, layout="hands42",
                       options={"labels": str(labels), "split": str(split), "camera": "cam4", "activity": "pour_milk"})


def write_labels(folder, lines, name="action_train.txt"):
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(HEADER + "".join(lines))


def test_indexes_sequences_of_the_split_with_per_frame_labels(tmp_path):
    make_release(tmp_path / "h2o", ["subject1/h1/1", "subject3/k1/1"])
    write_labels(tmp_path / "labels", ["1 subject1/h1/1 13 0 3 0 11\n", "2 subject1/h1/1 5 6 9 0 11\n"])
    (tmp_path / "labels" / "action_test.txt").write_text("id path start_act end_act start_frame end_frame\n1 subject3/k1/1 0 5 0 11\n")
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": {"subject1/h1/1": "vid1"}, "test": {"subject3/k1/1": "vid2"}}))
    rows, names = index_rows(spec(tmp_path, tmp_path / "labels", split))
    by_id = {r["id"]: r for r in rows}
    assert set(by_id) == {"subject1_h1_1", "subject3_k1_1"}
    assert by_id["subject1_h1_1"]["labels"] == [13, 13, 13, 13, 0, 0, 5, 5, 5, 5, 0, 0]
    assert by_id["subject3_k1_1"]["labels"] is None  # the test file withholds labels
    assert by_id["subject3_k1_1"]["split"] == "test"
    assert by_id["subject1_h1_1"]["pose_format"] == "h2o_hand_pose"
    assert names[13] == "place milk"


def test_label_beyond_the_sequence_names_sequence_and_file(tmp_path):
    make_release(tmp_path / "h2o", ["subject1/h1/1"], n=10)
    write_labels(tmp_path / "labels", ["1 subject1/h1/1 13 0 30 0 40\n"])
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": {"subject1/h1/1": "vid1"}}))
    with pytest.raises(DatasetError, match=r"sequence subject1/h1/1 .*action_labels|sequence subject1/h1/1 .*labels.*reaches frame 30"):
        index_rows(spec(tmp_path, tmp_path / "labels", split))


def test_missing_sequence_folder(tmp_path):
    (tmp_path / "h2o").mkdir()
    write_labels(tmp_path / "labels", [])
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": {"subject9/h1/1": "vid1"}}))
    with pytest.raises(DatasetError, match="sequence subject9/h1/1: no frames"):
        index_rows(spec(tmp_path, tmp_path / "labels", split))


@pytest.mark.realdata
def test_real_pouring_milk_split_and_labels(shared_data):
    split = read_split(shared_data / "h2o" / "pouring_milk_split.json")
    assert sum(v == "train" for v in split.values()) == 27 and sum(v == "test" for v in split.values()) == 11
    segments = read_action_labels(shared_data / "h2o" / "action_labels", where="h2o")
    assert [label for *_, label in segments["subject1/h1/1"]] == [13, 5, 18, 23, 21]  # place grab open pour close
    labelled = [p for p in split if p in segments]
    assert len(labelled) == 16


@pytest.mark.realdata
def test_real_labels_into_frames_match_the_public_phase_segments(shared_data):
    import pandas as pd

    from pipeline.datasets.segments import segments_to_frames

    public = pd.read_csv(shared_data / "h2o" / "pouring_milk_phase_segments.csv")
    segments = read_action_labels(shared_data / "h2o" / "action_labels", where="h2o")
    for seq, group in public.groupby("h2o_sequence"):
        n = int(group["seq_end_frame"].iloc[0]) + 1
        ours = segments_to_frames(segments[seq], n, where=seq)
        for r in group.itertuples():
            assert np.all(ours[r.start_act : r.end_act_as_given + 1] == r.action_label)

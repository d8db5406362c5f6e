import numpy as np
import pytest

from pipeline.sequences import IndexTableError, make_table, read_index, write_index


def row(seq_id, n=4, labels=None, split="train"):
    return {"id": seq_id, "dataset": "d", "split": split, "activity": "a", "n_frames": n, "fps": 10.0,
            "source_fps": 10.0, "n_source_frames": n, "video": f"{seq_id}.mp4", "video_fingerprint": "v",
            "labels": labels}


def test_round_trip_keeps_labels_and_names(tmp_path):
    table = make_table([row("b", labels=[0, 0, 1, 1]), row("a", labels=None, split="val")])
    write_index(table, tmp_path / "index.parquet", {0: "start", 1: "end"})
    index = read_index(tmp_path / "index.parquet")
    assert index.ids == ["a", "b"]
    assert index.label_names == {0: "start", 1: "end"}
    assert np.array_equal(index.labels("b"), [0, 0, 1, 1]) and index.labels("a") is None
    assert index.split("val").ids == ["a"]
    assert index.row("b")["fingerprint"]  # derived from the per-source fingerprints


@pytest.mark.parametrize(
    "rows, message",
    [
        ([row("a"), row("a")], "duplicate sequence id"),
        ([row("a", labels=[0, 1])], "has 2 labels for 4 frames"),
        ([row("a", split="dev")], "unknown split"),
        ([row("a", n=0)], "has 0 frames"),
        ([], "no sequences found"),
    ],
)
def test_validation(rows, message):
    with pytest.raises(IndexTableError, match=message):
        make_table(rows)


def test_missing_index_says_what_to_run(tmp_path):
    with pytest.raises(IndexTableError, match="pipeline index --dataset"):
        read_index(tmp_path / "index.parquet")

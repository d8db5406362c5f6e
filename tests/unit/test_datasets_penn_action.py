import numpy as np
import pytest
import scipy.io

from pipeline.datasets import DatasetError
from pipeline.datasets.penn_action import index_rows, read_labels
from pipeline.manifest import DatasetSpec
from pipeline.skeletons.layouts import PENN13


def write_mat(path, action="squat", train=1, n=20):
    rng = np.random.default_rng(0)
    scipy.io.savemat(path, {
        "action": np.array([action]), "pose": np.array(["front"]),
        "x": rng.uniform(0, 480, (n, 13)), "y": rng.uniform(0, 360, (n, 13)),
        "visibility": np.ones((n, 13), np.uint8), "bbox": np.zeros((n, 4)),
        "train": np.array([[train]], np.int32), "dimensions": np.array([[360, 480, n]], np.uint16),
        "nframes": np.array([[n % 256]], np.uint8),
    })


def spec(root, fps=30.0):
    return DatasetSpec(name="pennaction", kind="penn_action", root=root, fps=fps, layout="penn13")


def test_indexes_official_layout(tmp_path):
    (tmp_path / "labels").mkdir()
    write_mat(tmp_path / "labels" / "0001.mat", "squat", 1, n=300)  # nframes wraps in uint8: use the arrays
    write_mat(tmp_path / "labels" / "0002.mat", "pullup", -1, n=20)
    (tmp_path / "frames" / "0002").mkdir(parents=True)
    for i in range(20):
        (tmp_path / "frames" / "0002" / f"{i + 1:06d}.jpg").write_bytes(b"x")
    rows, names = index_rows(spec(tmp_path))
    by_id = {r["id"]: r for r in rows}
    assert by_id["0001"]["n_frames"] == 300 and by_id["0001"]["split"] == "train"
    assert by_id["0002"]["split"] == "test" and by_id["0002"]["activity"] == "pullup"
    assert by_id["0002"]["frames_dir"].endswith("frames/0002") and by_id["0001"]["frames_dir"] == ""
    assert by_id["0001"]["pose_format"] == "penn_mat" and by_id["0001"]["labels"] is None


def test_frame_folder_length_must_match_labels(tmp_path):
    (tmp_path / "labels").mkdir()
    write_mat(tmp_path / "labels" / "0001.mat", n=20)
    (tmp_path / "frames" / "0001").mkdir(parents=True)
    (tmp_path / "frames" / "0001" / "000001.jpg").write_bytes(b"x")
    with pytest.raises(DatasetError, match="sequence 0001: .*holds 1 frames but .*0001.mat labels 20"):
        index_rows(spec(tmp_path))


@pytest.mark.parametrize("content", [b"", b"MATLAB 5.0 MAT-file truncated", b"\x00" * 200])
def test_truncated_or_foreign_mat_names_the_file(tmp_path, content):
    (tmp_path / "labels").mkdir()
    bad = tmp_path / "labels" / "0007.mat"
    bad.write_bytes(content)
    with pytest.raises(DatasetError, match="0007.mat"):
        read_labels(bad)


def test_mat_missing_a_field(tmp_path):
    path = tmp_path / "0003.mat"
    scipy.io.savemat(path, {"action": np.array(["squat"]), "x": np.zeros((3, 13))})
    with pytest.raises(DatasetError, match="0003.mat lacks or mangles a field"):
        read_labels(path)


def test_empty_label_folder(tmp_path):
    (tmp_path / "labels").mkdir()
    with pytest.raises(DatasetError, match="no label files"):
        index_rows(spec(tmp_path))


@pytest.mark.realdata
def test_real_penn_action_labels(shared_data):
    rows, _ = index_rows(spec(shared_data / "penn_action"))
    assert len(rows) == 2150
    counts = {}
    for r in rows:
        counts[(r["activity"], r["split"])] = counts.get((r["activity"], r["split"]), 0) + 1
    assert len({a for a, _ in counts}) == 13
    assert counts[("baseball_pitch", "train")] == 104 and counts[("baseball_pitch", "test")] == 63
    assert counts[("bench_press", "train")] == 69 and counts[("bench_press", "test")] == 71
    assert counts[("squat", "train")] == 114 and counts[("squat", "test")] == 117
    assert max(r["n_frames"] for r in rows) == 663  # longer than nframes' uint8 can hold


@pytest.mark.realdata
def test_real_joint_order_matches_layout(shared_data):
    lab = read_labels(shared_data / "penn_action" / "labels" / "0001.mat")
    assert lab.x.shape[1] == PENN13.n_joints
    head, l_ankle = PENN13.index("head"), PENN13.index("l_ankle")
    visible = (lab.visibility[:, head] > 0) & (lab.visibility[:, l_ankle] > 0)
    assert np.all(lab.y[visible, head] < lab.y[visible, l_ankle])  # the head is above the ankles (image y down)

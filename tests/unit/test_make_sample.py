"""make-sample writes only its own folder: other kinds, foreign folders and siblings are never touched."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.cli import main
from tests.conftest import make_project

SMALL = {"train_per_activity": 1, "val_per_activity": 0, "min_seconds": 1.0, "max_seconds": 1.0,
         "dino_hidden": 32, "dino_layers": 1}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    project = make_project(tmp_path / "project", sample=SMALL)
    monkeypatch.chdir(project)
    return project


def make_sample(entry: str, name: str = "victim"):
    with open("m.yaml", "w") as fh:
        fh.write(f"datasets:\n  {name}: {entry}\n")
    return CliRunner().invoke(main, ["--manifest", "m.yaml", "make-sample", "-d", name])


def test_a_dataset_of_another_kind_is_refused_and_left_intact(workdir):
    """It used to delete the root of any dataset it was pointed at (exit 0, the labels gone)."""
    (workdir / "penn" / "labels").mkdir(parents=True)
    (workdir / "penn" / "labels" / "0001.mat").write_bytes(b"precious")
    result = make_sample("{kind: penn_action, root: penn}")
    assert result.exit_code == 1 and "of kind 'penn_action'" in result.output and "victim" in result.output
    assert (workdir / "penn" / "labels" / "0001.mat").read_bytes() == b"precious"


def test_a_folder_it_did_not_write_is_refused_and_left_intact(workdir):
    (workdir / "mine" / "videos").mkdir(parents=True)
    (workdir / "mine" / "videos" / "holiday.mp4").write_bytes(b"precious")
    result = make_sample("{kind: videos, root: mine}")
    assert result.exit_code == 1 and "did not write" in result.output and "Traceback" not in result.output
    assert (workdir / "mine" / "videos" / "holiday.mp4").read_bytes() == b"precious"


def test_it_rewrites_its_own_folder_and_nothing_beside_it(workdir):
    (workdir / "out.tmp").mkdir()  # the sibling the old code deleted as its scratch folder
    (workdir / "out.tmp" / "keep.txt").write_text("keep")
    assert make_sample("{kind: videos, root: out}").exit_code == 0
    first = sorted(p.name for p in (workdir / "out" / "videos").iterdir())
    (workdir / "out" / "notes.txt").write_text("mine")  # a stray file inside: kept, never deleted
    result = make_sample("{kind: videos, root: out}")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (workdir / "out" / "videos").iterdir()) == first
    assert (workdir / "out.tmp" / "keep.txt").read_text() == "keep"
    assert (workdir / "out" / "notes.txt").read_text() == "mine"
    assert not (workdir / "out" / ".make-sample.tmp").exists()


def test_pose_files_are_written_the_same_under_every_python(tmp_path):
    # np.savez streams into zipfile, whose local headers differ between Python 3.11 releases (so did the
    # sample's DVC hash); _write_npz writes each member whole, uncompressed, with a fixed date and no zip64
    import zipfile

    from stages.make_sample import _write_npz

    joints = np.arange(2 * 13 * 3, dtype=np.float32).reshape(2, 13, 3)
    _write_npz(tmp_path / "a.npz", joints_2d=joints, layout=np.array("penn13"))
    with np.load(tmp_path / "a.npz") as z:
        assert np.array_equal(z["joints_2d"], joints) and str(z["layout"]) == "penn13"
    raw = (tmp_path / "a.npz").read_bytes()
    assert raw[4:6] == b"\x14\x00"  # version needed to extract 2.0: no zip64 records
    with zipfile.ZipFile(tmp_path / "a.npz") as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == ["joints_2d.npy", "layout.npy"]
    assert all(i.date_time == (1980, 1, 1, 0, 0, 0) and i.compress_type == zipfile.ZIP_STORED for i in infos)
    _write_npz(tmp_path / "b.npz", joints_2d=joints, layout=np.array("penn13"))
    assert (tmp_path / "b.npz").read_bytes() == raw

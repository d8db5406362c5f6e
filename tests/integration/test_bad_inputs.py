"""Bad inputs and faults on the tiny generated sample, through the `pipeline` command as a user runs it.

Each test asserts two things: the one message names what it should (dataset, sequence, file, store,
chunk), and no cached sequence was lost or left wrong (what stays complete is what it was; what cannot be
trusted is stale, never "up to date"). Inputs covered elsewhere, and not repeated here:
- corrupt, truncated, zero-frame and missing videos -> VideoError naming the file: tests/unit/test_video.py;
  a corrupt video among good ones fails its sequence and keeps the others: tests/unit/test_decode.py;
  at index time: tests/unit/test_datasets_videos.py::test_corrupt_video_names_sequence_and_file;
- NaN / missing joints contribute nothing to heatmaps: tests/unit/test_heatmaps.py;
- a missing body-model file, said once for every sequence: tests/integration/test_pose_stages.py;
- missing DINOv2 weights offline: tests/unit/test_extract_dino.py::test_missing_weights_offline_say_how_to_provide_them;
- kill -9 during a stage, then resume to the bytes of an uninterrupted run: tests/integration/test_dvc_pipeline.py
  and tests/unit/test_extract_dino.py; workers exit when their parent is killed: tests/unit/test_runner.py;
- a corrupt chunk, corrupt group metadata: tests/unit/test_store.py (here: through the stages).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.store import ArtifactStore

SEQ = "squat_val_000"
STAGES = (["decode", "-d", "sample", "-j", "1"], ["extract-dino", "-d", "sample"],
          ["keypoints", "-d", "sample", "-j", "1"], ["heatmaps", "-d", "sample", "-j", "1"])


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


def ok(*args: str):
    result = cli("-q", *args)
    assert result.exit_code == 0, result.output
    return result


def fails(*args: str, naming: tuple[str, ...]) -> str:
    """Run a command that must fail with one clean message (no traceback) containing every `naming`."""
    result = cli(*args)
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output, result.output
    for text in naming:
        assert text in result.output, f"{text!r} not in:\n{result.output}"
    return result.output


def store(name: str) -> ArtifactStore:
    return ArtifactStore(f"data/sample/{name}.zarr")


def contents(name: str) -> dict[str, bytes]:
    """Every complete sequence's arrays, as bytes."""
    s = store(name)
    return {f"{seq}/{a}": s.read(seq, a).tobytes() for seq in s.sequences() for a in s.array_names(seq)}


def set_params(**sections) -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())
    for section, values in sections.items():
        params.setdefault(section, {}).update(values)
    Path("params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="session")
def built_project(sample_project, tmp_path_factory) -> Path:
    """The tiny sample with every extraction stage run (frames made small so that copies are cheap)."""
    root = tmp_path_factory.mktemp("built") / "project"
    shutil.copytree(sample_project, root, symlinks=True)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        params = yaml.safe_load(Path("params.yaml").read_text())
        params["decode"].update(resize_short=32, crop=28)
        params["extract_dino"]["overrides"]["sample"]["image_size"] = 28
        Path("params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        for args in STAGES:
            ok(*args)
    finally:
        os.chdir(cwd)
    return root


@pytest.fixture
def work(built_project, tmp_path, monkeypatch) -> Path:
    dest = tmp_path / "project"
    shutil.copytree(built_project, dest, symlinks=True)
    monkeypatch.chdir(dest)
    return dest


def truncated_faststart_copy(video: Path) -> None:
    """Rewrite `video` with its index first (as many cameras write), then cut it in half: its header
    still counts every frame (index is fine), but half of them cannot be decoded."""
    with av.open(str(video)) as source:
        frames = [f.to_ndarray(format="rgb24") for f in source.decode(video=0)]
    tmp = video.with_suffix(".tmp.mp4")
    with av.open(str(tmp), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        for image in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode())
    data = tmp.read_bytes()
    tmp.unlink()
    video.write_bytes(data[: len(data) // 2])


# ----------------------------------------------------------------------------- staleness across stages
def test_a_video_that_fails_to_decode_is_never_up_to_date_downstream(work):
    """decode failed on a truncated video, yet extract-dino called every sequence up to date and frames.zarr
    kept the old video's frames under the old fingerprint."""
    video = work / "data/sample/raw/videos" / f"{SEQ}.mp4"
    original = video.read_bytes()
    before = {"frames": contents("frames"), "dino": contents("dino")}
    truncated_faststart_copy(video)
    ok("index", "-d", "sample")
    fails(*STAGES[0], naming=("decode (sample,", "frames.zarr", SEQ, f"{SEQ}.mp4", "marked stale"))
    output = fails(*STAGES[1], naming=("extract_dino (sample,", "dino.zarr", SEQ, "frames.zarr", "stale: decode failed"))
    assert output.count(SEQ) >= 1 and "1 of 1 sequence(s) failed" in output
    for name in ("frames", "dino"):  # the others are intact; the bad one is hidden, not wrong
        assert SEQ not in store(name).sequences() and store(name).status(SEQ) == "stale"
        assert contents(name) == {k: v for k, v in before[name].items() if not k.startswith(SEQ + "/")}
    video.write_bytes(original)  # the good video is back: nothing is recomputed, the old results revive
    ok("index", "-d", "sample")
    ok(*STAGES[0])
    ok(*STAGES[1])
    assert contents("frames") == before["frames"] and contents("dino") == before["dino"]


def test_a_pose_file_that_cannot_be_read_is_never_up_to_date_downstream(work):
    before = contents("heatmaps")
    (work / "data/sample/raw/poses" / f"{SEQ}.npz").write_bytes(b"PK\x03\x04 not a zip archive")
    ok("index", "-d", "sample")
    fails(*STAGES[2], naming=("keypoints (sample,", "keypoints.zarr", f"sample: sequence {SEQ}", f"{SEQ}.npz"))
    fails(*STAGES[3], naming=("heatmaps (sample,", "heatmaps.zarr", SEQ, "keypoints.zarr", "stale: keypoints failed"))
    assert SEQ not in store("keypoints").sequences() and SEQ not in store("heatmaps").sequences()
    assert contents("heatmaps") == {k: v for k, v in before.items() if not k.startswith(SEQ + "/")}


def test_an_index_newer_than_the_frames_is_not_embedded(work):
    """The index changed (a new video) but decode was not re-run: frames.zarr holds the old video."""
    video = work / "data/sample/raw/videos" / f"{SEQ}.mp4"
    with av.open(str(video)) as source:
        frames = [255 - f.to_ndarray(format="rgb24") for f in source.decode(video=0)]
    from stages.make_sample import write_video

    write_video(video, np.stack(frames), 24)
    ok("index", "-d", "sample")
    set_params(extract_dino={"pooling": "cls"})  # so that extract-dino has work to do
    fails(*STAGES[1], naming=(SEQ, "another version of its source", "run `pipeline decode`"))
    assert SEQ not in store("dino").sequences()


def test_keypoints_missing_in_every_frame_fail_their_heatmaps_by_name(work):
    """NaN coordinates count as missing joints; a sequence with none at all has no crop box."""
    path = work / "data/sample/raw/poses" / f"{SEQ}.npz"
    poses = dict(np.load(path))
    poses["joints_2d"][..., :2] = np.nan
    np.savez(path, **poses)
    before = contents("heatmaps")
    ok("index", "-d", "sample")
    ok(*STAGES[2])
    fails(*STAGES[3], naming=("heatmaps (sample,", SEQ, "keypoints.zarr", f"poses/{SEQ}.npz", "no confident joint"))
    assert contents("heatmaps") == {k: v for k, v in before.items() if not k.startswith(SEQ + "/")}


# ----------------------------------------------------------------------------- provenance
def test_a_model_that_cannot_load_leaves_the_features_and_their_provenance_alone(work):
    """extract-dino wrote the new model into dino.zarr's provenance before loading it, so reports called the
    old (random-weight) features the new model's."""
    before_provenance, before = store("dino").provenance, contents("dino")
    broken = work / "broken-dinov2"
    shutil.copytree(work / "data/sample/raw/dinov2-random", broken)
    (broken / "model.safetensors").write_bytes(b"\0" * 64)
    set_params(extract_dino={"overrides": {"sample": {"model": str(broken), "image_size": 28}}})
    fails(*STAGES[1], naming=("broken-dinov2",))
    assert store("dino").provenance == before_provenance
    assert store("dino").sequences() == []  # made by the old model: stale, not passed off as the new one's
    set_params(extract_dino={"overrides": {"sample": {"model": "data/sample/raw/dinov2-random", "image_size": 28}}})
    ok(*STAGES[1])  # back to the old model: revived, nothing recomputed
    assert contents("dino") == before and store("dino").provenance == before_provenance


def test_heatmaps_do_not_record_where_the_stores_were(work, tmp_path):
    ok("--store-root", str(tmp_path / "elsewhere"), "keypoints", "-d", "sample", "-j", "1")
    ok("--store-root", str(tmp_path / "elsewhere"), "heatmaps", "-d", "sample", "-j", "1")
    here, there = Path("data/sample/heatmaps.zarr"), tmp_path / "elsewhere/sample/heatmaps.zarr"
    files = [{p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()} for root in (here, there)]
    assert files[0] == files[1]


# ----------------------------------------------------------------------------- corrupt stores
def test_a_corrupted_frames_chunk_fails_its_sequence_naming_store_sequence_and_chunk(work):
    """Same-size random bytes over an uncompressed chunk used to be embedded as garbage features."""
    chunk = next((work / "data/sample/frames.zarr" / SEQ / "rgb").rglob("c/*/*/*/*"))
    chunk.write_bytes(np.random.default_rng(0).integers(0, 256, chunk.stat().st_size, dtype=np.uint8).tobytes())
    set_params(extract_dino={"pooling": "cls"})
    fails(*STAGES[1], naming=("frames.zarr", f"sequence {SEQ}", "'rgb'", "c/0/0/0/0", "corrupt"))
    assert SEQ not in store("dino").sequences() and len(store("dino").sequences()) == 19


def test_corrupt_sequence_metadata_is_recomputed_and_named(work, caplog):
    """A corrupt zarr.json of one sequence used to be a raw JSONDecodeError blocking every stage on the store."""
    before = contents("frames")
    (work / "data/sample/frames.zarr" / SEQ / "zarr.json").write_text('{"zarr_format": 3, "node_ty')
    set_params(extract_dino={"pooling": "cls"})
    fails(*STAGES[1], naming=(SEQ, "frames.zarr", "metadata is unreadable"))
    result = cli("decode", "-d", "sample", "-j", "1")
    assert result.exit_code == 0, result.output
    assert f"sequence {SEQ} has unreadable metadata" in caplog.text and "frames.zarr" in caplog.text
    assert contents("frames") == before


def test_two_concurrent_writers_end_with_the_store_of_one(work):
    before = contents("frames")
    shutil.rmtree("data/sample/frames.zarr")
    command = [sys.executable, "-m", "pipeline.cli", "-q", "decode", "-d", "sample", "-j", "1"]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert all(run.returncode == 0 for run in runs), outputs
    assert contents("frames") == before and sorted(store("frames").sequences()) == store("frames").all_groups()


# ----------------------------------------------------------------------------- raw data refused at index
def edit(relative: str, change) -> None:
    path = Path("data/sample/raw") / relative
    path.write_text(change(path.read_text()))


@pytest.mark.parametrize("file, change, naming", [
    ("sequences.csv", lambda t: t + f"{SEQ},pick_up,train\n", ("sequences.csv", "line", SEQ, "repeat")),
    ("labels.csv", lambda t: t + f"{SEQ},3,0\n", ("labels.csv", "line", SEQ, "frame 3", "repeat")),
    ("labels.csv", lambda t: t.replace(f"{SEQ},3,", f"{SEQ},3,x", 1), ("labels.csv", "line", "'label' must be an integer")),
    ("labels.csv", lambda t: t + f"{SEQ},100000,1\n", (SEQ, "labels.csv", "labels frame 100000")),
    ("labels.csv", lambda t: t + f"{SEQ},-7,1\n", (SEQ, "labels.csv", "labels frame -7")),
    ("label_names.csv", lambda t: t + "0,again\n", ("label_names.csv", "repeat", "label 0")),
], ids=["duplicate-sequence", "duplicate-label", "non-integer-label", "label-beyond", "negative-frame",
        "duplicate-label-name"])
def test_bad_csv_rows_are_refused_naming_file_and_rows_and_the_index_is_kept(work, file, change, naming):
    index = work / "data/sample/index.parquet"
    kept = index.read_bytes()
    edit(file, change)
    fails("index", "-d", "sample", naming=("sample", *naming))
    assert index.read_bytes() == kept


@pytest.mark.parametrize("name", ["my video", "-x", ".", "zarr.json"])
def test_unsafe_sequence_ids_are_refused_at_index_naming_the_file(work, name):
    videos = work / "data/sample/raw/videos"
    shutil.copy(videos / f"{SEQ}.mp4", videos / f"{name}.mp4")
    edit("sequences.csv", lambda t: t + f"{name},squat,train\n")
    fails("index", "-d", "sample", naming=(f"sequence id {name!r}", f"{name}.mp4", "rename the file"))


@pytest.mark.parametrize("n_frames", [0, 1])
def test_penn_action_label_files_of_0_or_1_frames_get_the_min_frames_message(work, n_frames):
    """They used to crash index with KeyError: 'video'."""
    import scipy.io

    (work / "penn/labels").mkdir(parents=True)
    scipy.io.savemat(work / "penn/labels/0001.mat", {
        "action": "squat", "pose": "front", "x": np.zeros((n_frames, 13)), "y": np.zeros((n_frames, 13)),
        "visibility": np.ones((n_frames, 13), np.uint8), "train": np.array([[1]]), "dimensions": np.array([[360, 480, 1]])})
    Path("m.yaml").write_text("datasets:\n  tinypenn: {kind: penn_action, root: penn}\n")
    fails("--manifest", "m.yaml", "index", "-d", "tinypenn",
          naming=("tinypenn", "index.min_frames=2", "0001", f"{n_frames} frames", "0001.mat"))


def test_a_one_frame_video_gets_the_min_frames_message(work):
    from stages.make_sample import write_video

    write_video(work / "data/sample/raw/videos" / f"{SEQ}.mp4", np.zeros((1, 32, 32, 3), np.uint8), 24)
    edit("labels.csv", lambda t: "".join(line for line in t.splitlines(True) if not line.startswith(SEQ + ",")))
    fails("index", "-d", "sample", naming=("sample", "index.min_frames=2", SEQ, "1 frames", f"{SEQ}.mp4"))


def test_h2o_split_entries_may_not_leave_the_root(work):
    (work / "h2o").mkdir()
    (work / "split.json").write_text('{"train": {"../../etc": "x"}}')
    (work / "labels").mkdir()
    Path("m.yaml").write_text("datasets:\n  hands: {kind: h2o, root: h2o, split: ./split.json, labels: ./labels}\n")
    fails("--manifest", "m.yaml", "index", "-d", "hands", naming=("hands", "split.json", "'../../etc'", "no '..'"))


# ----------------------------------------------------------------------------- settings refused up front
@pytest.mark.parametrize("text, naming", [
    ("decoed:\n  crop: 224\n", ("params.yaml", "unknown section(s) ['decoed']")),
    ("heatmaps:\n  overrides:\n    sampel: {size: 20}\n", ("params.yaml", "heatmaps.overrides", "['sampel']")),
    ("decode: [\n", ("params.yaml", "line", "not valid YAML")),
], ids=["unknown-section", "override-of-unknown-dataset", "yaml-syntax"])
def test_bad_params_files_are_refused_before_any_work(work, text, naming):
    params = Path("params.yaml").read_text()
    if text.startswith("heatmaps"):
        params = params.replace("heatmaps:\n", "heatmaps:\n  overrides:\n    sampel: {size: 20}\n", 1)
    else:
        params += text
    Path("params.yaml").write_text(params)
    before = contents("heatmaps")
    fails("heatmaps", "-d", "sample", "-j", "1", naming=naming)
    assert contents("heatmaps") == before


def test_unknown_dataset_and_method_and_a_broken_manifest_are_one_message_each(work):
    fails("index", "-d", "nosuch", naming=("unknown dataset 'nosuch'",))
    fails("train", "-d", "sample", "-m", "../../evil", naming=("'../../evil' is not one of",))
    fails("export", "-d", "sample", "-a", "../../../x", naming=("'../../../x' is not an artifact name",))
    Path("m.yaml").write_text("datasets:\n  a: {kind: videos, root: x\n")
    fails("--manifest", "m.yaml", "index", "-d", "a", naming=("m.yaml", "line", "not valid YAML"))


def test_an_unset_variable_blocks_only_the_dataset_that_uses_it(work, monkeypatch):
    monkeypatch.delenv("SURELY_UNSET_ROOT", raising=False)
    manifest = Path("data_manifest.yaml").read_text() + "  other:\n    kind: videos\n    root: ${SURELY_UNSET_ROOT}\n"
    Path("data_manifest.yaml").write_text(manifest)
    ok("index", "-d", "sample")
    fails("index", "-d", "other", naming=("dataset 'other'", "${SURELY_UNSET_ROOT} is not set"))

"""The keypoints and heatmaps stages end to end on tiny written datasets: serial, incremental, dask."""

from pathlib import Path

import numpy as np
import pytest
import scipy.io
import yaml
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.context import StageContext
from pipeline.manifest import DatasetSpec
from pipeline.runner import StageError
from pipeline.sequences import make_table, read_index, write_index
from pipeline.store import ArtifactStore
from stages import heatmaps, index, keypoints
from tests.body_model_fixtures import write_model_dir

PARAMS = {
    "index": {"min_frames": 2},
    "keypoints": {"body_model_dir": "body_models", "smpl_gender": "neutral", "mano_flat_hand_mean": True,
                  "lift": True, "normalise3d": True, "openpose_person": "track"},
    "heatmaps": {"size": 30, "sigma": 1.0, "pad": 0.1, "square": True, "dtype": "float16", "compression_level": 3},
}


def _context(workdir: Path, spec: DatasetSpec, params=PARAMS, scheduler=None, workers=1) -> StageContext:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return StageContext(dataset=spec, params_path=path, store_root=str(workdir / "data"), scheduler=scheduler,
                        workers=workers, workdir=workdir)


def _penn_dataset(root: Path, n_seqs=4) -> DatasetSpec:
    labels = root / "labels"
    labels.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n_seqs):
        n = 10 + 3 * i
        walk = np.cumsum(rng.normal(0, 2, (n, 13, 2)), axis=0) + rng.uniform(100, 300, (1, 13, 2))
        scipy.io.savemat(labels / f"{i + 1:04d}.mat", {
            "action": "squat", "pose": "front", "x": walk[..., 0], "y": walk[..., 1],
            "visibility": (rng.random((n, 13)) > 0.2).astype(np.uint8), "bbox": np.zeros((n, 4)),
            "train": np.array([[1 if i % 2 else -1]]), "dimensions": np.array([[360, 480, n]]),
            "nframes": np.array([[n]]),
        })
    return DatasetSpec(name="tinypenn", kind="penn_action", root=root, fps=30.0, layout="penn13")


@pytest.fixture
def penn(tmp_path):
    spec = _penn_dataset(tmp_path / "raw")
    ctx = _context(tmp_path, spec)
    index.run(ctx)
    return ctx


def _groups_bytes(store: Path) -> dict[str, bytes]:
    """Every file of every sequence group (arrays, chunks, group attrs), by relative path."""
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.glob("*/**/*")) if p.is_file()}


def test_keypoints_then_heatmaps(penn):
    summary = keypoints.run(penn)
    assert len(summary.computed) == 4
    store = ArtifactStore(penn.artifact("keypoints"))
    assert store.sequences() == ["0001", "0002", "0003", "0004"]
    joints = store.read("0003", "joints_2d")
    attrs = store.attrs("0003")
    assert joints.shape == (16, 13, 3) and joints.dtype == np.float32
    assert attrs["layout"] == "penn13" and attrs["image_size"] == [480, 360]
    assert store.array("0003", "joints_2d").metadata.dimension_names == ("time", "joint", "coord")

    summary = heatmaps.run(penn)
    assert summary.frames == 10 + 13 + 16 + 19
    maps = ArtifactStore(penn.artifact("heatmaps"))
    heat = maps.read("0003", "heatmap")
    assert heat.shape == (16, 27, 30, 30) and heat.dtype == np.float16 and np.isfinite(heat).all()
    assert maps.array("0003", "heatmap").metadata.dimension_names == ("time", "channel", "y", "x")
    x0, y0, x1, y1 = maps.read("0003", "box")
    confident = joints[joints[..., 2] > 0]
    assert (confident[:, 0] >= x0).all() and (confident[:, 0] <= x1).all() and x1 - x0 == pytest.approx(y1 - y0)
    assert maps.attrs("0003")["channels"][13] == "head-l_shoulder"

    assert keypoints.run(penn).skipped == ["0001", "0002", "0003", "0004"]
    assert heatmaps.run(penn).computed == []


def test_changed_params_recompute_and_uint8_quantisation(penn):
    keypoints.run(penn)
    heatmaps.run(penn)
    before = ArtifactStore(penn.artifact("heatmaps")).read("0002", "heatmap").astype(np.float32)
    params = {**PARAMS, "heatmaps": {**PARAMS["heatmaps"], "dtype": "uint8"}}
    ctx = _context(penn.workdir, penn.dataset, params)
    assert len(heatmaps.run(ctx).computed) == 4
    store = ArtifactStore(ctx.artifact("heatmaps"))
    after = store.read("0002", "heatmap")
    assert after.dtype == np.uint8
    np.testing.assert_allclose(after * store.attrs("0002")["scale"], before, atol=1 / 510 + 1e-3)


def test_a_bad_sequence_is_named_and_the_others_are_kept(penn):
    (penn.dataset.root / "labels" / "0002.mat").write_bytes(b"not a mat file")
    with pytest.raises(StageError, match=r"0002.*0002\.mat"):
        keypoints.run(penn)
    assert ArtifactStore(penn.artifact("keypoints")).sequences() == ["0001", "0003", "0004"]


@pytest.mark.slow
def test_dask_cluster_writes_the_same_bytes_as_serial(penn, tmp_path):
    distributed = pytest.importorskip("distributed")
    keypoints.run(penn)
    heatmaps.run(penn)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        ctx = _context(tmp_path / "dask", penn.dataset, scheduler=cluster.scheduler_address)
        ctx.index_path.parent.mkdir(parents=True)
        ctx.index_path.write_bytes(penn.index_path.read_bytes())
        assert len(keypoints.run(ctx).computed) == 4
        assert len(heatmaps.run(ctx).computed) == 4
    for name in ("keypoints", "heatmaps"):
        serial, clustered = (_groups_bytes(Path(c.artifact(name))) for c in (penn, ctx))
        assert serial.keys() == clustered.keys() and len(serial) > 8
        assert serial == clustered, name


def _smpl_dataset(tmp_path: Path) -> DatasetSpec:
    root = tmp_path / "raw"
    (root / "poses").mkdir(parents=True)
    rng = np.random.default_rng(1)
    rows = []
    for i, n in enumerate((6, 9)):
        path = root / "poses" / f"clip{i}.npz"
        np.savez(path, smpl_global_orient=np.tile([np.pi, 0, 0], (n, 1)), smpl_pose=rng.normal(0, 0.2, (n, 69)),
                 smpl_betas=np.zeros(10), smpl_camera=np.tile([100.0, 1.0, 1.0], (n, 1)))
        rows.append({"id": f"clip{i}", "dataset": "smplset", "split": "train", "activity": "a", "n_frames": n,
                     "fps": 10.0, "source_fps": 10.0, "n_source_frames": n, "pose": str(path), "pose_format": "npz",
                     "fingerprint": f"fp{i}", "labels": None})
    spec = DatasetSpec(name="smplset", kind="videos", root=root, fps=10.0, layout="smpl24")
    write_index(make_table(rows), tmp_path / "data" / "smplset" / "index.parquet", {})
    return spec


def test_smpl_parameters_are_lifted_projected_and_rendered(tmp_path):
    write_model_dir(tmp_path / "body_models")
    ctx = _context(tmp_path, _smpl_dataset(tmp_path))
    keypoints.run(ctx)
    store = ArtifactStore(ctx.artifact("keypoints"))
    joints_2d, joints_3d = store.read("clip1", "joints_2d"), store.read("clip1", "joints_3d")
    assert joints_2d.shape == joints_3d.shape == (9, 24, 3) and store.attrs("clip1")["layout"] == "smpl24"
    assert (joints_2d[..., 2] == 1).all() and store.attrs("clip1")["normalised3d"]
    np.testing.assert_allclose(joints_3d[:, 0], 0, atol=1e-5)  # root-centred
    heatmaps.run(ctx)
    assert ArtifactStore(ctx.artifact("heatmaps")).read("clip1", "heatmap").shape == (9, 24 + 23, 30, 30)


def test_missing_body_models_fail_with_where_to_get_them(tmp_path):
    ctx = _context(tmp_path, _smpl_dataset(tmp_path))
    with pytest.raises(StageError, match=r"clip0.*SMPL_NEUTRAL\.pkl.*smpl\.is\.tue\.mpg\.de") as err:
        keypoints.run(ctx)
    assert str(err.value).count("SMPL_NEUTRAL.pkl (or .npz) not found") == 1  # said once, for every sequence


def test_cli_on_the_generated_sample(project):
    for args in (["keypoints", "-d", "sample", "-j", "1"], ["heatmaps", "-d", "sample", "-j", "1"]):
        result = CliRunner().invoke(main, ["-q", *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    rows = list(read_index("data/sample/index.parquet").rows())
    keypoints_store, heatmaps_store = ArtifactStore("data/sample/keypoints.zarr"), ArtifactStore("data/sample/heatmaps.zarr")
    assert heatmaps_store.sequences() == sorted(row["id"] for row in rows)
    for row in rows:
        assert keypoints_store.read(row["id"], "joints_2d").shape == (row["n_frames"], 13, 3)
        assert heatmaps_store.array(row["id"], "heatmap").shape == (row["n_frames"], 27, 30, 30)

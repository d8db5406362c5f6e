"""stages.export: an HDF5 copy round-trips every array, its dims and the attrs of an artifact store."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from pipeline.context import StageContext
from pipeline.manifest import DatasetSpec
from pipeline.store import ArtifactStore, StoreError
from stages import export


@pytest.fixture
def ctx(tmp_path):
    spec = DatasetSpec(name="toy", kind="videos", root=tmp_path, fps=10.0, layout="penn13")
    return StageContext(dataset=spec, store_root=str(tmp_path / "data"), workdir=tmp_path)


def test_round_trip_of_arrays_dims_and_attrs(ctx, monkeypatch):
    monkeypatch.setattr("pipeline.store.MAX_CHUNK_BYTES", 1000)  # several chunks per array
    store = ArtifactStore(ctx.artifact("dino"), mode="a")
    store.set_provenance(stage="extract_dino", params={"pooling": "cls+mean", "batch_size": 4},
                         model="facebook/dinov2-base", feature_layout=[["cls", 0, 3], ["patch_mean", 3, 6]])
    rng = np.random.default_rng(0)
    arrays = {
        "a": rng.normal(size=(40, 6)).astype(np.float16),
        "b": rng.normal(size=(7, 6)).astype(np.float16),
    }
    for seq_id, feature in arrays.items():
        store.write_sequence(seq_id, {"feature": (feature, ("time", "feature")), "t": (np.arange(len(feature)) / 10, ("time",))},
                             fingerprint=f"fp-{seq_id}", attrs={"fps": 10.0, "n_frames": len(feature)})
    store.root.create_group("c", attributes={"complete": False})  # an unfinished write is not exported

    out = export.run(ctx, artifact="dino")
    assert out == ctx.data_dir / "dino.h5"
    with h5py.File(out, "r") as h5:
        assert sorted(h5) == ["a", "b"]
        for seq_id, feature in arrays.items():
            np.testing.assert_array_equal(h5[seq_id]["feature"][...], feature)
            assert h5[seq_id]["feature"].dtype == np.float16
            assert list(h5[seq_id]["feature"].attrs["dims"]) == ["time", "feature"]
            np.testing.assert_array_equal(h5[seq_id]["t"][...], np.arange(len(feature)) / 10)
            assert h5[seq_id].attrs["fingerprint"] == f"fp-{seq_id}" and h5[seq_id].attrs["n_frames"] == len(feature)
        assert h5.attrs["model"] == "facebook/dinov2-base" and h5.attrs["stage"] == "extract_dino"
        assert json.loads(h5.attrs["params"]) == {"pooling": "cls+mean", "batch_size": 4}
        assert json.loads(h5.attrs["feature_layout"]) == [["cls", 0, 3], ["patch_mean", 3, 6]]
        assert h5.attrs["source_store"] == ctx.artifact("dino")


def test_uint8_frames_export_to_a_chosen_path(ctx, tmp_path):
    frames = np.random.default_rng(1).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    ArtifactStore(ctx.artifact("frames"), mode="a").write_sequence(
        "s", {"rgb": (frames, ("time", "y", "x", "channel"))}, fingerprint="f")
    out = export.run(ctx, artifact="frames", out=tmp_path / "elsewhere" / "f.h5")
    with h5py.File(out, "r") as h5:
        np.testing.assert_array_equal(h5["s/rgb"][...], frames)
        assert list(h5["s/rgb"].attrs["dims"]) == ["time", "y", "x", "channel"]
    assert not (tmp_path / "elsewhere" / "f.h5.tmp").exists()


def test_missing_store_is_a_store_error(ctx):
    with pytest.raises(StoreError, match="heatmaps.zarr"):
        export.run(ctx, artifact="heatmaps")


@pytest.mark.parametrize("artifact", ["../../../x", "/etc/passwd", "dino/../frames", "Dino", ""])
def test_an_artifact_that_is_a_path_is_refused(ctx, tmp_path, artifact):
    """`-a ../../../x` used to read (and by default write) outside data/<dataset>/."""
    with pytest.raises(StoreError, match="is not an artifact name"):
        export.run(ctx, artifact=artifact)


def test_the_same_store_exports_to_the_same_bytes(ctx, tmp_path):
    import time

    ArtifactStore(ctx.artifact("dino"), mode="a").write_sequence(
        "s", {"feature": (np.ones((3, 2), np.float16), ("time", "feature"))}, fingerprint="f")
    first = export.run(ctx, artifact="dino", out=tmp_path / "a.h5").read_bytes()
    time.sleep(1.1)  # HDF5 stored dataset times with a one-second resolution
    assert export.run(ctx, artifact="dino", out=tmp_path / "b.h5").read_bytes() == first

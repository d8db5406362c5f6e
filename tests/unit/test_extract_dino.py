"""stages.extract_dino with a tiny random DINOv2 saved to a temp dir and loaded through the stage's own code."""

from __future__ import annotations

import shutil

import huggingface_hub.constants
import numpy as np
import pytest
import torch
import yaml
from transformers import Dinov2Model

from pipeline.context import StageContext
from pipeline.dino.model import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ModelUnavailableError,
    save_random_checkpoint,
)
from pipeline.manifest import DatasetSpec
from pipeline.runner import StageError
from pipeline.sequences import make_table, write_index
from pipeline.store import ArtifactStore
from stages import extract_dino

SIZE = 56  # 4 x 4 patches of 14 px
LENGTHS = {"s0": 5, "s1": 7, "s2": 3, "s3": 9}
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2, image_size=SIZE)


def frames_of(seq_id: str, n: int) -> np.ndarray:
    seed = sum(map(ord, seq_id))
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)


def write_dataset(root, lengths=LENGTHS, decoded=None):
    """Index + frames.zarr for `lengths`; only the ids in `decoded` (default all) have frames."""
    rows = [
        {"id": s, "dataset": "toy", "split": "train", "activity": "wave", "n_frames": n, "fps": 10.0,
         "source_fps": 10.0, "n_source_frames": n, "video": f"{s}.mp4", "frames_dir": "", "pose": "",
         "pose_format": "", "fingerprint": f"fp-{s}", "labels": None}
        for s, n in lengths.items()
    ]
    write_index(make_table(rows), root / "data" / "toy" / "index.parquet", {})
    store = ArtifactStore(str(root / "data" / "toy" / "frames.zarr"), mode="a")
    for s, n in lengths.items():
        if decoded is None or s in decoded:
            store.write_sequence(s, {"rgb": (frames_of(s, n), ("time", "y", "x", "channel"))},
                                 fingerprint=f"frames-{s}", source=f"fp-{s}", attrs={"fps": 10.0, "n_frames": n})


def make_ctx(root, **params) -> StageContext:
    settings = {"model": str(root / "ckpt"), "revision": "main", "pooling": "cls+mean", "image_size": SIZE,
                "dtype": "auto", "batch_size": 4, "num_workers": 2, "group_frames": 8}
    settings.update(params)
    (root / "params.yaml").write_text(yaml.safe_dump({"extract_dino": settings}))
    spec = DatasetSpec(name="toy", kind="videos", root=root, fps=10.0, layout="penn13")
    return StageContext(dataset=spec, params_path=root / "params.yaml", store_root=str(root / "data"), workdir=root)


@pytest.fixture
def toy(tmp_path):
    save_random_checkpoint(tmp_path / "ckpt", **TINY)
    write_dataset(tmp_path)
    return make_ctx(tmp_path)


@pytest.fixture
def forwards(monkeypatch):
    """Counts Dinov2Model forward calls in this process."""
    calls = []
    real = Dinov2Model.forward
    monkeypatch.setattr(Dinov2Model, "forward", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    return calls


def reference(ckpt, frames: np.ndarray, pooling="cls+mean") -> np.ndarray:
    """A direct transformers forward of the same preprocessed frames (ImageNet normalisation)."""
    model = Dinov2Model.from_pretrained(str(ckpt), local_files_only=True).eval()
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        tokens = model(pixel_values=x).last_hidden_state
    parts = {"cls": [tokens[:, 0]], "mean": [tokens[:, 1:].mean(1)], "cls+mean": [tokens[:, 0], tokens[:, 1:].mean(1)]}
    return torch.cat(parts[pooling], dim=1).half().numpy()


def stored(ctx) -> dict[str, np.ndarray]:
    store = ArtifactStore(ctx.artifact("dino"))
    return {s: store.read(s, "feature") for s in store.sequences()}


def test_features_equal_a_direct_transformers_forward(toy):
    summary = extract_dino.run(toy, device="cpu")
    assert summary.computed == list(LENGTHS) and summary.frames == sum(LENGTHS.values())
    store = ArtifactStore(toy.artifact("dino"))
    for s, n in LENGTHS.items():
        feature = store.read(s, "feature")
        assert feature.shape == (n, 64) and feature.dtype == np.float16
        np.testing.assert_array_equal(feature, reference(toy.workdir / "ckpt", frames_of(s, n)))
        assert store.array(s, "feature").metadata.dimension_names == ("time", "feature")
        assert store.attrs(s)["compute_dtype"] == "float32" and store.attrs(s)["n_frames"] == n
    prov = store.provenance
    assert prov["model"] == str(toy.workdir / "ckpt") and prov["resolved_revision"].startswith("local:")
    assert prov["pooling"] == "cls+mean" and prov["feature_dim"] == 64
    assert prov["feature_layout"] == [["cls", 0, 32], ["patch_mean", 32, 64]]


def test_second_run_does_zero_forwards(toy, forwards):
    extract_dino.run(toy, device="cpu")
    assert len(forwards) == 6  # 24 frames in batches of 4 spanning sequences
    forwards.clear()
    again = extract_dino.run(toy, device="cpu")
    assert forwards == [] and again.skipped == list(LENGTHS) and again.computed == []


def test_pooling_or_model_change_recomputes(toy, forwards):
    extract_dino.run(toy, device="cpu")
    mean_ctx = make_ctx(toy.workdir, pooling="mean")
    assert extract_dino.run(mean_ctx, device="cpu").computed == list(LENGTHS)
    mean_features = stored(mean_ctx)["s1"]
    np.testing.assert_array_equal(mean_features, reference(toy.workdir / "ckpt", frames_of("s1", 7), "mean"))
    save_random_checkpoint(toy.workdir / "other", seed=1, **TINY)
    other = make_ctx(toy.workdir, pooling="mean", model=str(toy.workdir / "other"))
    assert extract_dino.run(other, device="cpu").computed == list(LENGTHS)
    assert not np.array_equal(stored(other)["s1"], mean_features)
    save_random_checkpoint(toy.workdir / "other", seed=2, **TINY)  # new weights under the same path
    assert extract_dino.run(other, device="cpu").computed == list(LENGTHS)


def test_resume_after_a_crash_ends_with_the_bytes_of_an_uninterrupted_run(toy, tmp_path_factory, monkeypatch):
    clean_root = tmp_path_factory.mktemp("clean")
    shutil.copytree(toy.workdir / "ckpt", clean_root / "ckpt")
    write_dataset(clean_root)
    clean = make_ctx(clean_root, model=str(toy.workdir / "ckpt"))
    extract_dino.run(clean, device="cpu")

    real, calls = Dinov2Model.forward, []

    def crash_on_fourth(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("injected crash")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Dinov2Model, "forward", crash_on_fourth)
    with pytest.raises(RuntimeError, match="injected crash"):
        extract_dino.run(toy, device="cpu")
    assert ArtifactStore(toy.artifact("dino")).sequences() == ["s0", "s1"]  # 12 frames = 3 batches done
    monkeypatch.setattr(Dinov2Model, "forward", real)
    resumed = extract_dino.run(toy, device="cpu")
    assert resumed.skipped == ["s0", "s1"] and resumed.computed == ["s2", "s3"]
    a, b = ArtifactStore(toy.artifact("dino")), ArtifactStore(clean.artifact("dino"))
    for s in LENGTHS:
        assert a.read(s, "feature").tobytes() == b.read(s, "feature").tobytes()
        assert a.attrs(s) == b.attrs(s)


def test_undecoded_sequence_fails_by_name_and_the_others_are_written(tmp_path):
    save_random_checkpoint(tmp_path / "ckpt", **TINY)
    write_dataset(tmp_path, decoded={"s0", "s2", "s3"})
    ctx = make_ctx(tmp_path)
    with pytest.raises(StageError, match=r"(?s)toy, .*dino.zarr\): 1 of 4 sequence\(s\) failed.*s1: no frames in .*frames.zarr \(absent\)"):
        extract_dino.run(ctx, device="cpu")
    assert sorted(stored(ctx)) == ["s0", "s2", "s3"]


def test_missing_weights_offline_say_how_to_provide_them(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    write_dataset(tmp_path)
    ctx = make_ctx(tmp_path, model="facebook/dinov2-base")
    with pytest.raises(ModelUnavailableError) as err:
        extract_dino.run(ctx, device="cpu")
    message = str(err.value)
    assert "facebook/dinov2-base" in message and "offline" in message
    assert "hf download facebook/dinov2-base" in message and "extract_dino.model" in message


def test_hub_id_from_a_prepopulated_cache_records_the_commit(tmp_path, monkeypatch, forwards):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--acme--dinov2-tiny"
    save_random_checkpoint(repo / "snapshots" / commit, **TINY)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    write_dataset(tmp_path, {"s0": 5})
    ctx = make_ctx(tmp_path, model="acme/dinov2-tiny")
    extract_dino.run(ctx, device="cpu")
    assert ArtifactStore(ctx.artifact("dino")).provenance["resolved_revision"] == commit
    np.testing.assert_array_equal(stored(ctx)["s0"], reference(repo / "snapshots" / commit, frames_of("s0", 5)))


def test_group_jobs_keeps_whole_sequences():
    jobs = [extract_dino.Job(s, n, s, {}) for s, n in LENGTHS.items()]
    groups = extract_dino.group_jobs(jobs, 8)
    assert [[j.seq_id for j in g] for g in groups] == [["s0"], ["s1"], ["s2"], ["s3"]]
    assert [[j.seq_id for j in g] for g in extract_dino.group_jobs(jobs, 12)] == [["s0", "s1"], ["s2", "s3"]]

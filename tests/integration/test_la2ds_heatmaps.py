"""LA2DS trains from the cached heatmaps (heatmaps.zarr): the checkpoint records the store's params, a store
made with other geometry is refused at embedding time, uint8 and float16 stores both train, streaming from
Zarr gives the same model as reading from memory, and a short run lowers the loss."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from pipeline.store import ArtifactStore
from stages import train
from stages.shared.heatmap_store import read_maps
from stages.shared.inputs import HeatmapMismatch, check_model_heatmaps, load_inputs
from stages.shared.models import load_embedder
from tests.integration.test_train import _write_dataset, _write_heatmaps, _write_params


def _set_heatmaps(root, **changes) -> None:
    """Change the `heatmaps` section of the project's params.yaml."""
    path = root / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["heatmaps"].update(changes)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def _config(ctx, method: str = "la2ds") -> dict:
    return json.loads((ctx.models_dir(method) / "config.json").read_text())


@pytest.fixture
def trained(tmp_path):
    """LA2DS trained for two epochs on heatmaps rendered with sigma 1.0."""
    ctx = _write_dataset(tmp_path, per_activity=(2, 1))
    _write_params(tmp_path, {"epochs": 2, "batch_size": 8})
    _set_heatmaps(tmp_path, sigma=1.0)
    _write_heatmaps(ctx)
    train.run(ctx, "la2ds", device="cpu")
    return ctx


def test_la2ds_embeds_the_cached_maps_and_its_checkpoint_records_their_params(trained):
    ctx = trained
    config = _config(ctx)
    assert config["spec"]["arrays"] == {"heatmap": [27, 30, 30]}
    assert config["heatmaps"]["sigma"] == 1.0 and config["heatmaps"]["size"] == 30
    embedder = load_embedder(ctx.models_dir("la2ds"), "cpu")
    assert embedder.inputs == (("heatmaps", "heatmap"),)
    maps, stored = ArtifactStore(ctx.artifact("heatmaps")), ArtifactStore(ctx.artifact("embeddings_la2ds"))
    for seq in stored.sequences()[:3]:
        np.testing.assert_allclose(embedder.embed({"heatmap": read_maps(maps, seq)}), stored.read(seq, "embedding"),
                                   atol=1e-5)

    before = stored.read("squat_00", "embedding")
    _set_heatmaps(ctx.workdir, sigma=1.5)  # the user's edit: new maps, and LA2DS retrains on them
    _write_heatmaps(ctx)
    train.run(ctx, "la2ds", device="cpu")
    assert _config(ctx)["heatmaps"]["sigma"] == 1.5
    assert not np.allclose(ArtifactStore(ctx.artifact("embeddings_la2ds")).read("squat_00", "embedding"), before)


def test_embedding_refuses_heatmaps_made_with_other_params(trained):
    ctx = trained
    _set_heatmaps(ctx.workdir, sigma=2.0)
    _write_heatmaps(ctx)  # the store changes under a model trained on sigma 1.0
    url = ctx.artifact("heatmaps")
    with pytest.raises(HeatmapMismatch, match=r"sigma=1\.0.*sigma=2\.0") as err:
        check_model_heatmaps(ctx.models_dir("la2ds"), url)
    assert url in str(err.value) and "config.json" in str(err.value)
    with pytest.raises(HeatmapMismatch, match="sigma"):
        load_inputs(ctx, (("heatmaps", "heatmap"),), trained_heatmaps=_config(ctx)["heatmaps"])
    from stages import evaluate  # evaluate --trained-on embeds through the same check

    with pytest.raises(HeatmapMismatch, match="sigma"):
        evaluate.run(ctx, "la2ds", trained_on=ctx.name, device="cpu")


def test_a_model_that_reads_no_heatmaps_is_not_checked(tmp_path):
    ctx = _write_dataset(tmp_path, per_activity=(1, 1))
    _write_params(tmp_path, {"epochs": 1})
    train.run(ctx, "casa", device="cpu")
    assert _config(ctx, "casa")["heatmaps"] is None
    check_model_heatmaps(ctx.models_dir("casa"), ctx.artifact("heatmaps"))  # no heatmaps store needed


def test_uint8_heatmaps_read_as_maps_and_train(tmp_path):
    ctx = _write_dataset(tmp_path, per_activity=(2, 1))
    _write_params(tmp_path, {"epochs": 1, "batch_size": 8})
    _write_heatmaps(ctx)
    half = read_maps(ArtifactStore(ctx.artifact("heatmaps")), "squat_00")
    _set_heatmaps(tmp_path, dtype="uint8")
    _write_heatmaps(ctx)
    store = ArtifactStore(ctx.artifact("heatmaps"))
    assert store.read("squat_00", "heatmap").dtype == np.uint8
    maps = read_maps(store, "squat_00")
    assert maps.dtype == np.float32 and 0.9 < maps.max() <= 1.0
    np.testing.assert_allclose(maps, half, atol=1 / 510 + 1e-3)
    inputs = load_inputs(ctx, (("heatmaps", "heatmap"),))
    np.testing.assert_array_equal(np.asarray(inputs.arrays[inputs.ids.index("squat_00")]["heatmap"], np.float32), maps)
    train.run(ctx, "la2ds", device="cpu")
    assert _config(ctx)["heatmaps"]["dtype"] == "uint8"


def test_streaming_from_zarr_trains_the_same_model_as_reading_from_memory(tmp_path, monkeypatch):
    from pipeline.checkpoint import load_checkpoint
    from stages.shared import inputs as shared_inputs

    weights = {}
    for name, cache_bytes in (("memory", 2**34), ("streamed", 0)):
        root = tmp_path / name
        root.mkdir()
        ctx = _write_dataset(root, per_activity=(2, 1))
        _write_params(root, {"epochs": 2, "batch_size": 8})
        _write_heatmaps(ctx)
        monkeypatch.setattr(shared_inputs, "default_cache_bytes", lambda cache_bytes=cache_bytes: cache_bytes)
        train.run(ctx, "la2ds", device="cpu")
        weights[name] = load_checkpoint(ctx.models_dir("la2ds"))["state"]["model"]
    for key, value in weights["memory"].items():
        assert torch.equal(value, weights["streamed"][key]), key


@pytest.mark.slow
def test_a_short_training_run_on_the_sample_lowers_the_loss(tmp_path):
    ctx = _write_dataset(tmp_path, per_activity=(6, 1))
    _write_params(tmp_path, {"epochs": 10, "batch_size": 8, "lr": 0.003})
    _write_heatmaps(ctx)
    train.run(ctx, "la2ds", device="cpu")
    losses = [json.loads(line)["loss"] for line in (ctx.models_dir("la2ds") / "log.jsonl").read_text().splitlines()]
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]), losses


def test_robustness_rerenders_the_maps_from_perturbed_joints(trained):
    """LA2DS's robustness study (its Tables 3-4) reaches the model through maps re-rendered from the perturbed
    joints: clean joints give back the stored maps exactly, a dropped limb changes every frame's maps, no
    confident joint gives empty maps."""
    from model.metrics.perturb import drop_limbs, limb_groups
    from pipeline.skeletons.layouts import get_layout
    from stages import evaluate

    ctx = trained
    maps = ArtifactStore(ctx.artifact("heatmaps"))
    ids = maps.sequences()[:3]
    inputs = [{"heatmap": read_maps(maps, seq)} for seq in ids]
    derive = evaluate._rerender(ctx, inputs, ids)
    groups = limb_groups(get_layout("penn13"))
    for arrays, seq in zip(inputs, ids):
        np.testing.assert_array_equal(np.asarray(derive(arrays)["heatmap"]), read_maps(maps, seq))
        dropped = drop_limbs(arrays["joints_2d"], groups, 1.0, np.random.default_rng(0))  # one limb per frame
        changed = np.asarray(derive({**arrays, "joints_2d": dropped})["heatmap"]) != read_maps(maps, seq)
        assert changed.any(axis=(1, 2, 3)).all()  # every frame's maps lose what its dropped limb lit
        unseen = {**arrays, "joints_2d": arrays["joints_2d"] * np.array([1, 1, 0], np.float32)}
        assert not np.asarray(derive(unseen)["heatmap"]).any()  # no confident joint: empty maps

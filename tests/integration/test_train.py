"""The train stage end to end on a small generated dataset (index + keypoints store written here)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from model.trainer import Trainer
from pipeline.checkpoint import load_checkpoint, save_checkpoint
from pipeline.datasets.synthetic import ACTIVITIES, sample_sequence
from pipeline.manifest import DatasetSpec
from pipeline.params import ParamsError
from pipeline.sequences import make_table, write_index
from pipeline.store import ArtifactStore, StoreError
from stages import train
from stages.shared.models import load_embedder
from tests.tiny_models import TINY

REPO = Path(__file__).resolve().parents[2]
FPS = 12.0
DINO_DIM = 16


def _write_dataset(root: Path, per_activity: tuple[int, int] = (6, 3), seed: int = 0) -> train.StageContext:
    """Index, keypoints (and fake DINO features) of a few generated performances of each activity."""
    rng = np.random.default_rng(seed)
    spec = DatasetSpec(name="synth", kind="videos", root=root, fps=FPS, layout="penn13")
    ctx = train.StageContext(dataset=spec, params_path=root / "params.yaml", store_root=str(root / "data"), workdir=root)
    rows, joints, features = [], {}, {}
    for activity in ACTIVITIES:
        for k in range(sum(per_activity)):
            seq = sample_sequence(activity, rng, fps=FPS, seconds=rng.uniform(2.5, 4.0), image_size=160,
                                  missing_joint_prob=0.02)
            seq_id = f"{activity}_{k:02d}"
            T = len(seq.joints_2d)
            rows.append({"id": seq_id, "dataset": "synth", "split": "train" if k < per_activity[0] else "val",
                         "activity": activity, "n_frames": T, "fps": FPS, "source_fps": FPS,
                         "n_source_frames": T, "fingerprint": seq_id, "labels": None})
            joints[seq_id] = seq.joints_2d
            features[seq_id] = rng.normal(size=(T, DINO_DIM)).astype(np.float16)
    write_index(make_table(rows), ctx.index_path, {})
    kp = ArtifactStore(ctx.artifact("keypoints"), mode="a")
    kp.set_provenance(stage="test", params={}, layout="penn13")
    dino = ArtifactStore(ctx.artifact("dino"), mode="a")
    dino.set_provenance(stage="test", params={})
    for seq_id, j in joints.items():
        kp.write_sequence(seq_id, {"joints_2d": (j, ("time", "joint", "channel"))}, fingerprint=seq_id, source=seq_id,
                          attrs={"layout": "penn13", "fps": FPS, "image_size": [160, 160]})
        dino.write_sequence(seq_id, {"feature": (features[seq_id], ("time", "feature"))}, fingerprint=seq_id)
    return ctx


def _write_params(root: Path, train_changes: dict, method_changes: dict | None = None) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"].update({"batch_size": 8, "bucket_edges": [32], "log_every": 1, "lr_milestones": []})
    params["train"].update(train_changes)
    for name, sizes in TINY.items():
        params[name].update(sizes)
    for name, changes in (method_changes or {}).items():
        params[name].update(changes)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _write_heatmaps(ctx) -> None:
    """The heatmaps stage on the dataset's keypoints (LA2DS and late fusion read its store)."""
    from stages import heatmaps

    heatmaps.run(ctx)


def _kendalls_tau(embs: list[np.ndarray]) -> float:
    """Minimal local Kendall's tau (stride 1): nearest neighbour of each frame in every other sequence."""
    from scipy.stats import kendalltau

    taus = []
    for i, a in enumerate(embs):
        for j, b in enumerate(embs):
            if i != j:
                nn = ((a[:, None] - b[None]) ** 2).sum(-1).argmin(1)
                tau = kendalltau(np.arange(len(a)), nn).statistic
                if np.isfinite(tau):
                    taus.append(tau)
    return float(np.mean(taus))


def _val_tau(ctx, embed) -> float:
    """Mean over activities of the tau between validation sequences of that activity."""
    from pipeline.sequences import read_index

    table = read_index(ctx.index_path).split("val").table
    kp = ArtifactStore(ctx.artifact("keypoints"))
    return float(np.mean([
        _kendalls_tau([embed({"joints_2d": kp.read(s, "joints_2d")}) for s in group["id"]])
        for _, group in table.groupby("activity")
    ]))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """MASA trained briefly through the stage, plus the tau of the same model untrained."""
    from model.embedder import Embedder
    from model.method import InputSpec
    from model.registry import get_method
    from tests.tiny_models import tiny_params

    root = tmp_path_factory.mktemp("synth")
    ctx = _write_dataset(root)
    _write_params(root, {"epochs": 12, "lr": 0.003})
    torch.manual_seed(0)
    untrained = get_method("masa").build(tiny_params("masa"), InputSpec({"joints_2d": (13, 3)}, "penn13"))
    before = _val_tau(ctx, Embedder({None: untrained}, (("keypoints", "joints_2d"),)).embed)
    train.run(ctx, "masa", device="cpu")
    return ctx, before


@pytest.mark.slow
def test_training_lowers_the_loss_and_raises_kendalls_tau(trained):
    ctx, tau_before = trained
    records = [json.loads(line) for line in (ctx.models_dir("masa") / "log.jsonl").read_text().splitlines()]
    assert {"step", "epoch", "loss"} <= set(records[0])
    assert np.mean([r["loss"] for r in records[-3:]]) < np.mean([r["loss"] for r in records[:3]])
    tau_after = _val_tau(ctx, load_embedder(ctx.models_dir("masa"), "cpu").embed)
    assert tau_after > tau_before + 0.01, (tau_before, tau_after)


@pytest.mark.slow
def test_embeddings_cover_every_sequence_and_match_the_checkpoint(trained):
    ctx, _ = trained
    store = ArtifactStore(ctx.artifact("embeddings_masa"))
    kp = ArtifactStore(ctx.artifact("keypoints"))
    assert store.sequences() == kp.sequences()
    embedder = load_embedder(ctx.models_dir("masa"), "cpu")
    assert embedder.inputs == (("keypoints", "joints_2d"),)
    config = json.loads((ctx.models_dir("masa") / "config.json").read_text())
    dim = TINY["masa"]["d_model"] * (2 if config["params"]["clip_token"] else 1)
    for seq in store.sequences()[:3]:
        stored = store.read(seq, "embedding")
        assert stored.shape == (kp.read(seq, "joints_2d").shape[0], dim)
        np.testing.assert_allclose(embedder.embed({"joints_2d": kp.read(seq, "joints_2d")}), stored, atol=1e-5)
    assert config["method"] == "masa" and config["layout"] == "penn13"
    assert config["spec"]["arrays"] == {"joints_2d": [13, 3]}


@pytest.mark.slow
def test_resume_after_interruption_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    from pipeline.checkpoint import load_checkpoint

    runs = {}
    for name in ("whole", "interrupted"):
        root = tmp_path / name
        root.mkdir()
        ctx = _write_dataset(root, per_activity=(3, 1))
        _write_params(root, {"epochs": 3, "batch_size": 4})
        runs[name] = ctx
    train.run(runs["whole"], "casa", device="cpu")

    original = Trainer.train_step

    def crash_in_epoch_two(self, positions, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        return original(self, positions, epoch)

    monkeypatch.setattr(Trainer, "train_step", crash_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train.run(runs["interrupted"], "casa", device="cpu")
    monkeypatch.setattr(Trainer, "train_step", original)
    assert not load_checkpoint(runs["interrupted"].models_dir("casa"))["complete"]
    train.run(runs["interrupted"], "casa", device="cpu")
    a = load_checkpoint(runs["whole"].models_dir("casa"))
    b = load_checkpoint(runs["interrupted"].models_dir("casa"))
    assert a["complete"] and b["complete"] and a["state"]["step"] == b["state"]["step"]
    for key, value in a["state"]["model"].items():
        assert torch.equal(value, b["state"]["model"][key]), key
    steps = [json.loads(line)["step"] for line in (runs["interrupted"].models_dir("casa") / "log.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps))  # the log has no duplicated steps after the resume
    curves = [sorted((ctx.workdir / "losses" / ctx.name / "casa").glob("*.tsv")) for ctx in runs.values()]
    assert [p.name for p in curves[0]] == [p.name for p in curves[1]] and curves[0]
    assert [p.read_bytes() for p in curves[0]] == [p.read_bytes() for p in curves[1]]  # the DVC plots too


@pytest.mark.parametrize("method", ["la2ds", "fusion_early", "fusion_late"])
def test_every_method_trains_through_the_stage(tmp_path, method):
    ctx = _write_dataset(tmp_path, per_activity=(2, 1))
    _write_params(tmp_path, {"epochs": 2, "batch_size": 8})
    _write_heatmaps(ctx)
    train.run(ctx, method, device="cpu")
    store = ArtifactStore(ctx.artifact(f"embeddings_{method}"))
    assert len(store.sequences()) == 12
    assert (ctx.models_dir(method) / "checkpoint.pt").is_file()


def test_per_activity_models(tmp_path):
    ctx = _write_dataset(tmp_path, per_activity=(2, 1))
    _write_params(tmp_path, {"epochs": 1, "multi_activity": False})
    train.run(ctx, "casa", device="cpu")
    folders = sorted(p.name for p in ctx.models_dir("casa").iterdir() if p.is_dir())
    assert folders == sorted(ACTIVITIES)
    curves = ctx.workdir / "losses" / ctx.name / "casa"
    assert sorted(p.parent.name for p in curves.glob("*/loss.tsv")) == sorted(ACTIVITIES)
    embedder = load_embedder(ctx.models_dir("casa"), "cpu")
    joints = ArtifactStore(ctx.artifact("keypoints")).read("squat_00", "joints_2d")
    assert embedder.embed({"joints_2d": joints}, activity="squat").shape[0] == len(joints)
    with pytest.raises(KeyError, match="per activity"):
        embedder.embed({"joints_2d": joints})


def test_a_param_that_shapes_only_the_embedding_keeps_the_weights_and_recomputes_the_embeddings(tmp_path):
    # masa.clip_scale weights the exported clip part and nothing in training (Masa.export_params): the weights
    # are kept, not trained again, and the stored embeddings must follow the new scale
    ctx = _write_dataset(tmp_path, per_activity=(1, 1))
    _write_params(tmp_path, {"epochs": 1}, {"masa": {"clip_token": True, "clip_scale": 1.0}})
    train.run(ctx, "masa", device="cpu")
    folder = ctx.models_dir("masa")
    before = ArtifactStore(ctx.artifact("embeddings_masa")).read("squat_00", "embedding")
    weights = load_checkpoint(folder)["state"]["model"]
    log_before = (folder / "log.jsonl").read_text()
    _write_params(tmp_path, {"epochs": 1}, {"masa": {"clip_token": True, "clip_scale": 3.0}})
    train.run(ctx, "masa", device="cpu")
    after = ArtifactStore(ctx.artifact("embeddings_masa")).read("squat_00", "embedding")
    half = TINY["masa"]["d_model"]
    np.testing.assert_array_equal(after[:, :half], before[:, :half])  # the same weights
    np.testing.assert_allclose(after[:, half:], 3.0 * before[:, half:], rtol=1e-5, atol=1e-6)
    assert np.abs(before[:, half:]).max() > 0
    saved = load_checkpoint(folder)
    assert (folder / "log.jsonl").read_text() == log_before  # no training step ran
    assert all(torch.equal(saved["state"]["model"][k], v) for k, v in weights.items())
    assert saved["config"]["params"]["clip_scale"] == 3.0  # what `embed` and `evaluate --trained-on` build
    joints = ArtifactStore(ctx.artifact("keypoints")).read("squat_00", "joints_2d")
    np.testing.assert_allclose(load_embedder(folder, "cpu").embed({"joints_2d": joints}),
                               after, rtol=1e-5, atol=1e-6)

    _write_params(tmp_path, {"epochs": 1}, {"masa": {"clip_token": True, "clip_scale": 3.0, "temperature": 0.2}})
    train.run(ctx, "masa", device="cpu")  # a param training reads: trained again from scratch
    assert not all(torch.equal(load_checkpoint(folder)["state"]["model"][k], v) for k, v in weights.items())


def test_a_checkpoint_whose_params_this_code_does_not_know_is_refused_with_the_way_out(tmp_path):
    ctx = _write_dataset(tmp_path, per_activity=(1, 1))
    _write_params(tmp_path, {"epochs": 1})
    train.run(ctx, "casa", device="cpu")
    folder = ctx.models_dir("casa")
    saved = load_checkpoint(folder)
    del saved["config"]["params"]["temperature"]  # as a checkpoint from before a param existed records them
    save_checkpoint(folder, saved["config"], saved["state"], complete=saved["complete"])
    refusal = r"missing key\(s\) \['temperature'\].*retrain it .*pipeline train --dataset synth --method casa"
    with pytest.raises(ParamsError, match=refusal):
        load_embedder(folder, "cpu")


def test_a_missing_artifact_names_the_store_and_the_command(tmp_path):
    ctx = _write_dataset(tmp_path, per_activity=(1, 1))
    _write_params(tmp_path, {"epochs": 1})
    shutil.rmtree(ctx.artifact("dino"))
    with pytest.raises(StoreError, match="pipeline extract-dino --dataset synth"):
        train.run(ctx, "fusion_early", device="cpu")


def test_a_sequence_without_confident_joints_trains_and_is_embedded(tmp_path):
    """Penn Action has one (every visibility flag 0): its heatmaps are zero maps, LA2DS trains on them."""
    ctx = _write_dataset(tmp_path, per_activity=(2, 1))
    _write_params(tmp_path, {"epochs": 1, "batch_size": 16})
    kp = ArtifactStore(ctx.artifact("keypoints"), mode="a")
    joints = kp.read("squat_00", "joints_2d")
    joints[..., 2] = 0
    kp.write_sequence("squat_00", {"joints_2d": (joints, ("time", "joint", "channel"))}, fingerprint="blank", source="squat_00",
                      attrs={"layout": "penn13", "fps": FPS, "image_size": [160, 160]})
    _write_heatmaps(ctx)
    assert not ArtifactStore(ctx.artifact("heatmaps")).read("squat_00", "heatmap").any()
    train.run(ctx, "la2ds", device="cpu")
    emb = ArtifactStore(ctx.artifact("embeddings_la2ds")).read("squat_00", "embedding")
    assert emb.shape[0] == len(joints) and np.isfinite(emb).all()

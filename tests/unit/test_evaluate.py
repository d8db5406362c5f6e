"""End-to-end `evaluate` stage on a tiny synthetic dataset built in tmp (index + keypoints + embeddings)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from model.metrics.alignment import kendalls_tau
from model.metrics.baselines import normalise_keypoints, time_feature
from pipeline.context import StageContext
from pipeline.manifest import DatasetSpec
from pipeline.sequences import make_table, read_index, write_index
from pipeline.skeletons.layouts import PENN13
from pipeline.store import ArtifactStore
from stages import evaluate
from stages import report as report_stage

REPO = Path(__file__).resolve().parents[2]
ACTIVITIES = ("jump", "squat", "wave")
METRICS = [
    "kendalls_tau", "kendalls_tau_reversed", "kendalls_tau_content",
    "activity_retrieval_ap_at_5", "activity_retrieval_ap_at_10", "action_recognition",
    "retrieval_ap_at_5", "retrieval_ap_at_10", "retrieval_ap_at_15", "phase_progression", "segmentation_kmeans",
    "segmental_f1_at_10", "segmental_f1_at_25", "segmental_f1_at_50", "edit", "segment_action_recognition",
] + [f"phase_classification_{c}_{p}pct" for c in ("svm", "logreg") for p in (10, 50, 100)]


def _joints(activity: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 13, 3) a skeleton whose limbs swing with a per-activity rhythm, plus pixel noise."""
    t = np.linspace(0, 1, n)[:, None]
    base = rng.normal(0, 20, size=(1, PENN13.n_joints, 2)) + np.array([320, 240])
    swing = 60 * np.sin((activity + 1) * np.pi * t)[..., None] * np.linspace(0.2, 1, PENN13.n_joints)[None, :, None]
    xy = base + swing + rng.normal(0, 2, size=(n, PENN13.n_joints, 2))
    return np.concatenate([xy, np.ones((n, PENN13.n_joints, 1))], -1).astype(np.float32)


def _phases(activity: int, n: int) -> np.ndarray:
    cuts = np.array([0.3, 0.7]) * n
    return (activity * 3 + np.searchsorted(cuts, np.arange(n), side="right")).astype(np.int64)


def build_dataset(root: Path, *, labelled: bool = True, method: str = "fake", plots: bool = True) -> StageContext:
    """7 sequences per activity (4 train, 3 val), keypoints and embeddings stores, and a params file."""
    rng = np.random.default_rng(0)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["evaluate"]["plots"].update(enabled=plots, tsne_frames=200)
    params["evaluate"]["robustness"].update(drop_probabilities=[0.0, 1.0], noise_stds=[0.1])
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    spec = DatasetSpec(name="tiny", kind="videos", root=root / "raw", fps=10.0, layout="penn13")
    ctx = StageContext(dataset=spec, params_path=root / "params.yaml", store_root=str(root / "data"), workdir=root)
    rows, kp = [], ArtifactStore(ctx.artifact("keypoints"), mode="a")
    emb = ArtifactStore(ctx.artifact(f"embeddings_{method}"), mode="a")
    for a, act in enumerate(ACTIVITIES):
        for v in range(7):
            seq, n = f"{act}_{v:02d}", int(rng.integers(24, 36))
            joints = _joints(a, n, rng)
            labels = _phases(a, n)
            rows.append(dict(id=seq, dataset="tiny", split="train" if v < 4 else "val", activity=act, n_frames=n,
                             fps=10.0, source_fps=10.0, n_source_frames=n, fingerprint=seq,
                             labels=labels.tolist() if labelled else None))
            kp.write_sequence(seq, {"joints_2d": (joints, ("time", "joint", "coord"))}, fingerprint=seq)
            e = np.concatenate([normalise_keypoints(joints, PENN13), time_feature(n), np.eye(3)[[a] * n]], 1)
            emb.write_sequence(seq, {"embedding": (e, ("time", "feature"))}, fingerprint=seq)
    names = {a * 3 + p: f"{act}_phase{p}" for a, act in enumerate(ACTIVITIES) for p in range(3)}
    write_index(make_table(rows), ctx.index_path, names if labelled else {})
    return ctx


class FakeEmbedder:
    """A test double of the trainer's Embedder: normalised keypoints, time and the activity's one-hot code (what
    `build_dataset` stores as its embeddings), read from joints_2d."""

    inputs = (("keypoints", "joints_2d"),)

    def embed(self, arrays: dict[str, np.ndarray], activity: str | None = None) -> np.ndarray:
        joints = np.asarray(arrays["joints_2d"])  # as `model.batch.collate` reads an array-like
        code = np.zeros((len(joints), len(ACTIVITIES)))
        if activity is not None:
            code[:, ACTIVITIES.index(activity)] = 1
        return np.concatenate([normalise_keypoints(joints, PENN13), time_feature(len(joints)), code], 1)


def _fake_val_embeddings(ctx: StageContext) -> tuple[list[np.ndarray], list[str]]:
    """What FakeEmbedder makes of the clean validation keypoints, and their activities."""
    val = read_index(ctx.index_path).split("val").table
    store = ArtifactStore(ctx.artifact("keypoints"))
    return [FakeEmbedder().embed({"joints_2d": store.read(s, "joints_2d")}) for s in val["id"]], list(val["activity"])


@pytest.fixture
def fake_trainer(monkeypatch):
    import stages.shared.models

    loaded = []
    fake = lambda models_dir, device: loaded.append((Path(models_dir), device)) or FakeEmbedder()  # noqa: E731
    monkeypatch.setattr(stages.shared.models, "load_embedder", fake)
    return loaded


def _train_logs(ctx: StageContext, method: str, steps: int = 20) -> None:
    """What `train` leaves: the local log (with wall-clock seconds), the loss curves and the model's config."""
    from stages.shared.loss_curves import LossCurves, folder

    models = ctx.models_dir(method)
    models.mkdir(parents=True)
    records = [{"step": s, "epoch": s // 5, "loss": 1.0 / s, "matching": 0.5 / s, "elapsed_s": 0.5 * s}
               for s in range(1, steps + 1)]
    (models / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    curves = LossCurves(folder(ctx.workdir, ctx.name, method))
    for record in records:
        curves.append(record)
    (models / "config.json").write_text(json.dumps({"train": {"multi_activity": True}, "params": {}}))


def test_end_to_end_writes_every_metric_for_every_feature(tmp_path, fake_trainer):
    ctx = build_dataset(tmp_path)
    _train_logs(ctx, "fake")

    evaluate.run(ctx, method="fake", device="cpu")

    report = json.loads(evaluate.report_path(tmp_path, "tiny", "fake").read_text())
    assert report["eval_split"] == "val" and report["n_train_videos"] == 12 and report["n_eval_videos"] == 9
    assert set(report["features"]) == {"learned", "raw_keypoints", "time"}
    for feat, metrics in report["features"].items():
        assert set(metrics) == set(METRICS), feat
    learned = report["features"]["learned"]
    assert set(learned["kendalls_tau"]["per_activity"]) == set(ACTIVITIES)
    assert learned["action_recognition"]["overall"] == 1.0  # the embedding carries a one-hot activity code
    assert report["features"]["time"]["kendalls_tau"]["overall"] > 0.98  # ties only where lengths differ
    content = {f: m["kendalls_tau_content"]["overall"] for f, m in report["features"].items()}
    assert content["time"] == 0.0  # position alone: the same order whichever way the partner plays
    # the fake model embeds keypoints and time: its content tau lies between position's and the keypoints'
    assert 0.1 < content["learned"] < content["raw_keypoints"]
    assert content["raw_keypoints"] > 0.5 * report["features"]["raw_keypoints"]["kendalls_tau"]["overall"]
    assert report["skipped"] == {} and report["multi_activity"] is True
    assert "seconds" not in report  # wall-clock figures live in timings/, not in the DVC output
    assert report["sklearn_version"] and report["params"]["protocol"]["tau_stride"] == 2
    drops = report["robustness"]["drop_limb"]
    assert set(drops) == {"p0", "p100"} and set(report["robustness"]["keypoint_noise"]) == {"std10pct"}
    clean, activities = _fake_val_embeddings(ctx)
    assert drops["p0"]["kendalls_tau"] == pytest.approx(kendalls_tau(clean, 2, activities)[0])
    assert drops["p100"]["kendalls_tau"] != drops["p0"]["kendalls_tau"]
    assert fake_trainer == [(ctx.models_dir("fake"), "cpu")]
    for name in ("tsne.png", "alignment.png", "tau_per_activity.png", "action_confusion.png", "loss.png"):
        assert (ctx.plots_dir("fake") / name).stat().st_size > 1000, name
    table = report_stage.run(tmp_path)  # the report reads what evaluate wrote
    assert "| tiny | **fake** | learned | one model for all activities |" in table and "| t/T |" in table


def test_headline_metrics_are_one_flat_level_of_rounded_numbers(tmp_path, fake_trainer):
    ctx = build_dataset(tmp_path, plots=False)
    _train_logs(ctx, "fake")
    evaluate.run(ctx, method="fake", device="cpu")
    headline = json.loads(ctx.metrics_path("fake").read_text())
    full = json.loads(evaluate.report_path(tmp_path, "tiny", "fake").read_text())["features"]["learned"]
    # no MoF: no own segments
    assert list(headline) == ["tau", "tau_content", "ap10", "cls100", "progress", "act_ret10", "action"]
    assert all(isinstance(v, float) and v == round(v, 4) for v in headline.values())
    assert headline["tau"] == round(full["kendalls_tau"]["overall"], 4)
    assert headline["cls100"] == round(full["phase_classification_svm_100pct"]["overall"], 4)
    timings = json.loads((tmp_path / "timings" / "tiny" / "fake.json").read_text())
    assert timings["train_s"] == 10.0 and timings["evaluate_s"] > 0 and "learned.kendalls_tau" in timings["evaluate"]


def test_evaluation_files_are_the_same_bytes_on_a_second_run(tmp_path, fake_trainer):
    ctx = build_dataset(tmp_path)
    _train_logs(ctx, "fake")
    files = [ctx.metrics_path("fake"), evaluate.report_path(tmp_path, "tiny", "fake"),
             *(ctx.plots_dir("fake") / name for name in ("alignment.png", "tau_per_activity.png", "loss.png"))]
    evaluate.run(ctx, method="fake", device="cpu")
    first = [f.read_bytes() for f in files]
    evaluate.run(ctx, method="fake", device="cpu")
    assert [f.read_bytes() for f in files] == first
    assert b"matplotlib" not in first[-1]  # no library version in the PNG


def test_without_labels_label_metrics_are_null_with_a_reason(tmp_path):
    ctx = build_dataset(tmp_path, labelled=False, plots=False)
    evaluate.run(ctx, method="raw")
    report = json.loads(evaluate.report_path(tmp_path, "tiny", "raw").read_text())
    assert set(report["features"]) == {"raw_keypoints", "time"}
    feats = report["features"]["raw_keypoints"]
    assert feats["phase_progression"] is None and feats["retrieval_ap_at_5"] is None
    assert "no per-frame labels" in report["skipped"]["phase_progression"]
    assert feats["kendalls_tau"]["overall"] is not None and feats["action_recognition"]["overall"] is not None
    assert report["robustness"] is None and "raw" in report["skipped"]["robustness"]


def test_robustness_with_no_perturbation_settings_is_skipped_with_a_reason(tmp_path, fake_trainer):
    ctx = build_dataset(tmp_path, plots=False)
    params = yaml.safe_load(ctx.params_path.read_text())
    params["evaluate"]["robustness"].update(drop_probabilities=[], noise_stds=[])
    ctx.params_path.write_text(yaml.safe_dump(params))
    _train_logs(ctx, "fake")
    evaluate.run(ctx, method="fake", device="cpu")
    report = json.loads(evaluate.report_path(tmp_path, "tiny", "fake").read_text())
    assert report["robustness"] is None and "no drop probabilities" in report["skipped"]["robustness"]
    assert report["features"]["learned"]["kendalls_tau_content"]["overall"] is not None  # the model still ran


def test_generalisation_embeds_with_the_other_datasets_model(tmp_path, fake_trainer):
    ctx = build_dataset(tmp_path, plots=False)
    other = tmp_path / "models" / "bigger" / "fake"
    other.mkdir(parents=True)
    evaluate.run(ctx, method="fake", trained_on="bigger", device="cpu")
    report = json.loads(evaluate.report_path(tmp_path, "tiny", "fake_from_bigger").read_text())
    assert report["trained_on"] == "bigger" and fake_trainer == [(other, "cpu")]
    clean, activities = _fake_val_embeddings(ctx)  # the learned features are the other model's embeddings
    expected = kendalls_tau(clean, 2, activities)[0]
    assert report["features"]["learned"]["kendalls_tau"]["overall"] == pytest.approx(expected)
    assert report["robustness"] is None


def test_missing_model_for_generalisation_is_a_clear_error(tmp_path):
    ctx = build_dataset(tmp_path, plots=False)
    with pytest.raises(evaluate.EvaluateError, match="no trained model"):
        evaluate.run(ctx, method="fake", trained_on="nowhere")


def test_missing_embeddings_name_the_store(tmp_path):
    ctx = build_dataset(tmp_path, plots=False)
    with pytest.raises(evaluate.EvaluateError, match="embeddings_other"):
        evaluate.run(ctx, method="other")


def test_loss_plot_draws_every_term_of_per_activity_models(tmp_path):
    from stages.shared.loss_curves import LossCurves
    from stages.shared.plots import loss_curve, read_curves

    for act in ("jump", "squat"):
        curves = LossCurves(tmp_path / "losses" / act)
        for s in range(1, 6):
            curves.append({"step": s, "epoch": 0, "loss": 1 / s, "matching": 0.5 / s, "seq_per_s": 9.0})
    assert set(read_curves(tmp_path / "losses")) == {"jump", "squat"}
    assert set(read_curves(tmp_path / "losses")["jump"]) == {"loss", "matching"}  # no wall-clock term
    assert loss_curve(tmp_path / "loss.png", tmp_path / "losses", tmp_path / "models", "fake on tiny").stat().st_size > 1000
    (tmp_path / "losses" / "jump" / "loss.tsv").write_text("step\tepoch\tloss\n1\t0\t0.5\nnot a row\n")
    with pytest.raises(ValueError, match=r"jump/loss.tsv:3"):
        loss_curve(tmp_path / "loss.png", tmp_path / "losses", tmp_path / "models", "fake on tiny")


def test_late_fusion_stage_switch_is_found_from_the_model_config(tmp_path):
    from stages.shared.plots import stage_switch

    (tmp_path / "config.json").write_text(json.dumps(
        {"params": {"stage1_epochs": 4}, "train": {"epochs": 10, "max_steps": 0}}))
    points = [(s, (s - 1) // 3, 1.0) for s in range(5, 31, 5)]  # 3 steps per epoch, logged every 5 steps
    assert stage_switch(tmp_path, None, points) == 12.0
    (tmp_path / "config.json").write_text(json.dumps({"params": {}, "train": {"epochs": 10, "max_steps": 0}}))
    assert stage_switch(tmp_path, None, points) is None


def test_headline_floors_negative_progression_and_leaves_out_what_was_not_computed():
    learned = {"kendalls_tau": {"overall": 0.91234567}, "phase_progression": {"overall": -1112536.9},
               "action_recognition": None, "retrieval_ap_at_10": {"overall": float("nan")},
               "segmentation_predicted": {"mof": 0.5, "edit": 0.2}}
    assert evaluate.headline({"features": {"learned": learned, "time": {}}}) == {"tau": 0.91234567, "progress": 0.0,
                                                                                "mof": 0.5}

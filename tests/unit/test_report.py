"""The report table: our rows beside the papers' numbers, and the protocol notes under it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model.metrics.published import PUBLISHED, for_dataset
from stages import report


def _metrics(tau: float, cls: float | None) -> dict:
    entry = lambda v: None if v is None else {"overall": v, "per_activity": {"pour_milk": v}}  # noqa: E731
    return {
        "kendalls_tau": {**entry(tau), "pairs": 12, "dropped_pairs": 1},
        "phase_classification_svm_100pct": entry(cls),
        "activity_retrieval_ap_at_10": entry(0.5),
        "segmentation_kmeans": {"mof": 0.61, "f1": 0.5, "miou": 0.4},
    }


def _write(root: Path, dataset: str, name: str, **extra) -> None:
    data = {
        "dataset": dataset, "method": "la2ds", "trained_on": None, "eval_split": "test", "n_train_videos": 27,
        "n_eval_videos": 11, "activities": ["pour_milk"], "multi_activity": False, "frame_labels": True,
        "sklearn_version": "1.9.1",
        "params": {"protocol": {"tau_stride": 2, "retrieval_stride": 2, "standardize": True, "action_frames": 16,
                                "action_pooling": "concat"}},
        "features": {"learned": _metrics(0.9512, 0.7012), "time": _metrics(0.99, 0.5)},
        "skipped": {"action_recognition": "needs two or more activities"},
        "robustness": {"drop_limb": {"p0": {"phase_classification_svm_100pct": 0.70, "kendalls_tau": 0.95},
                                     "p100": {"phase_classification_svm_100pct": 0.65, "kendalls_tau": 0.9}},
                       "keypoint_noise": {"std5pct": {"phase_classification_svm_100pct": 0.68, "kendalls_tau": 0.93}}},
        **extra,
    }
    folder = root / "reports" / "runs" / dataset  # where report reads: <workdir>/reports/runs/<dataset>/<run>.json
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(data))


def test_table_puts_our_rows_beside_the_papers_rows(tmp_path, capsys):
    _write(tmp_path, "h2o", "la2ds")
    out = tmp_path / "report.md"
    text = report.run(tmp_path, out=out)
    assert out.read_text() == text and text in capsys.readouterr().out
    main_table = text.split("Protocol (ours")[0]
    rows = [line for line in main_table.splitlines() if line.startswith("| h2o")]
    ours = next(r for r in rows if "**la2ds**" in r)
    assert "70.12" in ours and "0.9512" in ours and "61.00" in ours  # percent, fraction, MoF
    baseline = next(r for r in rows if "| t/T |" in r)
    assert "0.9900" in baseline
    paper = next(r for r in rows if "**LA2DS** | 2D heatmap" in r)  # the reimplemented method in bold
    assert "52.86 | 64.58 | 70.12" in paper and "LA2DS Tab. 5-7" in paper
    assert len(rows) == 2 + len(for_dataset("h2o"))


def test_notes_state_split_stride_classifier_version_and_skips(tmp_path):
    _write(tmp_path, "h2o", "la2ds")
    text = report.run(tmp_path)
    assert "evaluated on 'test' (11 videos" in text and "tau stride 2" in text and "scikit-learn 1.9.1" in text
    assert "RBF SVC(C=1, gamma='scale', ovo)" in text
    assert "not computed (needs two or more activities): action_recognition" in text
    assert "TCC phase annotations" in text


def test_robustness_table_compares_with_la2ds_tables_3_and_4(tmp_path):
    _write(tmp_path, "h2o", "la2ds")
    text = report.run(tmp_path)
    ours = next(line for line in text.splitlines() if line.startswith("| h2o | la2ds | ours"))
    assert "70.00 (0.950)" in ours and "65.00 (0.900)" in ours and "std5pct: 68.00 (0.930)" in ours
    assert "| h2o | LA2DS | LA2DS Tab. 3-4 | 70.12 | 69.54 | 69.02 | 68.94 | 68.59 |" in text


def test_generalisation_files_are_labelled_with_their_training_dataset(tmp_path):
    _write(tmp_path, "h2o", "la2ds_from_pennaction", trained_on="pennaction", robustness=None)
    text = report.run(tmp_path)
    assert "**la2ds (trained on pennaction)**" in text


def test_no_metrics_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="pipeline evaluate"):
        report.run(tmp_path)


def test_published_values_are_in_the_papers_units():
    for p in PUBLISHED:
        for key, value in p.metrics.items():
            if key in ("kendalls_tau", "phase_progression"):
                assert 0 < value <= 1, (p, key)
            else:
                assert 1 < value <= 100, (p, key)


def test_random_dinov2_features_are_stated(tmp_path):
    _write(tmp_path, "sample", "la2ds", dino={"model": "data/sample/raw/dinov2-random", "random_weights": True})
    _write(tmp_path, "h2o", "la2ds", dino={"model": "facebook/dinov2-base", "random_weights": False})
    text = report.run(tmp_path)
    assert "sample: DINOv2 features" in text and "RANDOM" in text and "dinov2-random" in text
    assert "h2o: DINOv2 features" not in text


def test_baselines_shared_by_method_runs_are_shown_once(tmp_path):
    _write(tmp_path, "h2o", "la2ds")
    _write(tmp_path, "h2o", "masa", method="masa")
    rows = [line for line in report.run(tmp_path).splitlines() if line.startswith("| h2o") and "| t/T |" in line]
    assert len(rows) == 1 and "| baseline |" in rows[0]


def test_setting_says_one_model_for_all_or_per_activity(tmp_path):
    _write(tmp_path, "h2o", "la2ds")
    _write(tmp_path, "h2o", "masa", method="masa", multi_activity=True)
    lines = report.run(tmp_path).splitlines()
    assert any(line.startswith("| h2o | **la2ds** | learned | one model per activity |") for line in lines)
    assert any(line.startswith("| h2o | **masa** | learned | one model for all activities |") for line in lines)
    assert any(line.startswith("| h2o | baseline | t/T | no training |") for line in lines)


def test_negative_progression_r2_is_shown_as_below_zero_and_explained(tmp_path):
    metrics = _metrics(0.5, 0.5)
    metrics["phase_progression"] = {"overall": -504.2, "per_activity": {"pour_milk": -504.2}}
    _write(tmp_path, "h2o", "la2ds", features={"learned": _metrics(0.9, 0.7), "raw_dino": metrics})
    text = report.run(tmp_path)
    row = next(line for line in text.splitlines() if "| raw DINOv2 |" in line)
    assert "| < 0 |" in row and "-504" not in text
    assert "Progress `< 0`: phase-progression R^2 below zero" in text
    _write(tmp_path, "h2o", "la2ds")
    assert "Progress `< 0`" not in report.run(tmp_path)  # no note without a negative value


def test_printed_text_adds_local_timings_the_file_leaves_out(tmp_path, capsys):
    _write(tmp_path, "h2o", "la2ds")
    (tmp_path / "timings" / "h2o").mkdir(parents=True)
    (tmp_path / "timings" / "h2o" / "la2ds.json").write_text('{"train_s": 61.2, "evaluate_s": 9.9, "evaluate": {}}')
    text = report.run(tmp_path, out=tmp_path / "report.md")
    printed = capsys.readouterr().out
    assert "| h2o | la2ds | 61 s | 10 s |" in printed and "Timings" not in text
    assert (tmp_path / "report.md").read_text() == text

"""`pipeline evaluate` and `pipeline report` through the CLI on the generated sample project."""

from __future__ import annotations

import json

from click.testing import CliRunner

from pipeline.cli import main


def test_evaluate_raw_then_report(project):
    result = CliRunner().invoke(main, ["-q", "evaluate", "--dataset", "sample", "--method", "raw"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((project / "reports" / "runs" / "sample" / "raw.json").read_text())
    assert metrics["eval_split"] == "val" and metrics["frame_labels"] is True
    headline = json.loads((project / "metrics" / "sample" / "raw.json").read_text())
    keys = {"tau", "tau_content", "ap10", "cls100", "progress", "act_ret10", "action", "mof"}
    assert set(headline) <= keys and {"tau", "tau_content"} <= set(headline)
    assert "time" in metrics["features"]  # t/T is always there, whatever other stores exist
    assert metrics["features"]["time"]["phase_progression"]["overall"] > 0.5
    assert (project / "plots" / "sample" / "raw" / "tau_per_activity.png").is_file()

    result = CliRunner().invoke(main, ["report", "--out", "reports/metrics.md"])
    assert result.exit_code == 0, result.output
    assert "| sample | baseline | t/T |" in result.output
    assert (project / "reports" / "metrics.md").read_text().strip() in result.output


def test_missing_embeddings_are_one_clear_error(project):
    result = CliRunner().invoke(main, ["evaluate", "--dataset", "sample", "--method", "masa"])
    assert result.exit_code == 1
    assert "embeddings_masa.zarr" in result.output and "Traceback" not in result.output

"""The whole DAG under DVC on the tiny sample: every stage runs, the metrics/plots are declared, a second
`dvc repro` does nothing, a changed MASA param re-runs only MASA, its evaluation and the report, and a changed
`heatmaps` param re-runs the heatmaps and only the models that read them (LA2DS, late fusion)."""

from __future__ import annotations

import json
import re

import pytest

from tests.integration.dvc_project import make_repo, repro, run

pytestmark = pytest.mark.slow
QUICK = {"train": {"overrides": {"sample": {"epochs": 3, "lr_milestones": []}}}, "fusion_late": {"stage1_epochs": 1}}


@pytest.fixture(scope="module")
def dag(tmp_path_factory):
    repo = make_repo(tmp_path_factory.mktemp("dag"), params=QUICK)
    repro(repo)
    return repo


def test_every_stage_produces_its_outputs(dag):
    methods = sorted(re.findall(r"sample-(\w+):", (dag / "params.yaml").read_text()))
    assert methods == ["casa", "fusion_early", "fusion_late", "la2ds", "masa", "vasot"]
    for method in methods:
        report = json.loads((dag / "reports" / "runs" / "sample" / f"{method}.json").read_text())
        assert {"learned", "raw_keypoints", "raw_dino", "time"} <= set(report["features"])
        assert "tau" in json.loads((dag / "metrics" / "sample" / f"{method}.json").read_text())
        assert list((dag / "plots" / "sample" / method).glob("*.png"))
        assert (dag / "losses" / "sample" / method / "loss.tsv").is_file()
    vasot = json.loads((dag / "metrics" / "sample" / "vasot.json").read_text())
    assert 0.0 <= vasot["mof"] <= 1.0
    table = (dag / "reports" / "metrics.md").read_text()
    assert "| sample | **masa** |" in table and "RANDOM" in table
    shown = run(["dvc", "metrics", "show"], dag).stdout
    assert "metrics/sample/masa.json" in shown


def test_second_repro_does_nothing(dag):
    assert "Running stage" not in repro(dag)


def test_changed_model_param_reruns_only_that_model_its_evaluation_and_the_report(dag):
    params = dag / "params.yaml"
    text = params.read_text()
    assert "\n  temperature: 0.1\n" in text.split("\nmasa:\n", 1)[1].split("\n\n", 1)[0]
    head, masa = text.split("\nmasa:\n", 1)
    params.write_text(head + "\nmasa:\n" + masa.replace("  temperature: 0.1\n", "  temperature: 0.2\n", 1))
    out = repro(dag)
    ran = set(re.findall(r"Running stage '([^']+)'", out))
    assert ran == {"train@sample-masa", "evaluate@sample-masa", "report"}, out


def test_changed_heatmaps_param_retrains_only_the_models_that_read_heatmaps(dag):
    import yaml

    params = dag / "params.yaml"
    data = yaml.safe_load(params.read_text())
    assert data["heatmaps"]["sigma"] == 1.0
    data["heatmaps"]["sigma"] = 1.5
    params.write_text(yaml.safe_dump(data, sort_keys=False))
    out = repro(dag)
    ran = set(re.findall(r"Running stage '([^']+)'", out))
    assert ran == {"heatmaps@sample", "train@sample-la2ds", "evaluate@sample-la2ds", "train@sample-fusion_late",
                   "evaluate@sample-fusion_late", "report"}, out
    for method in ("la2ds", "fusion_late"):
        config = json.loads((dag / "models" / "sample" / method / "config.json").read_text())
        assert config["heatmaps"]["sigma"] == 1.5
    assert json.loads((dag / "models" / "sample" / "masa" / "config.json").read_text())["heatmaps"] is None

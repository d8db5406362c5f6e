"""The DVC researcher's loop on a git + DVC copy of the repository (tiny sample, two methods):

- a clone that pulls from the team's remote is up to date, even after Python and numba wrote their caches
  beside the code (.dvcignore), and its git tree is clean;
- a clone that recomputes everything (`dvc repro`, no pull, as `make demo` in a fresh clone) writes the same
  bytes: `git status` shows no change to any tracked file, dvc.lock and the committed metrics included;
- `dvc exp run -S masa.<key>=...` re-runs only MASA's training, its evaluation and the report, and
  `dvc exp show` lists the param beside the headline metrics; `dvc metrics diff` compares two commits;
- `dvc plots show` draws the loss terms.
Each clone runs the code of its own tree (PYTHONPATH), so caches land where a user's would.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.integration.dvc_project import env, make_repo

pytestmark = pytest.mark.slow
RUNS = {
    "sample-masa": {"dataset": "sample", "method": "masa", "a": "keypoints.zarr", "b": "dino.zarr"},
    "sample-fusion_late": {"dataset": "sample", "method": "fusion_late", "a": "keypoints.zarr", "b": "dino.zarr"},
}
PARAMS = {"train": {"overrides": {"sample": {"epochs": 3, "lr_milestones": []}}}, "fusion_late": {"stage1_epochs": 1},
          "dag": {"runs": RUNS}}


def run(cmd: list[str], cwd: Path, *, check: bool = True, **extra: str | None) -> subprocess.CompletedProcess:
    """`cmd` in `cwd` with that tree's code first on the path; `extra` sets (or, with None, unsets) variables."""
    variables = {**env(), "PYTHONPATH": str(cwd)}
    for key, value in extra.items():
        if value is None:
            variables.pop(key, None)
        else:
            variables[key] = value
    result = subprocess.run(cmd, cwd=cwd, env=variables, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def git_changes(repo: Path) -> str:
    return run(["git", "status", "--porcelain"], repo).stdout


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """Clone A ran the whole DAG, committed what git tracks (dvc.lock, metrics, reports, loss curves) and
    pushed the rest to a directory remote standing for the team's server."""
    root = tmp_path_factory.mktemp("clean_clone")
    a = make_repo(root / "a", params=PARAMS)
    run(["dvc", "repro"], a)
    run(["dvc", "remote", "add", "-d", "team", str(root / "remote")], a)
    run(["git", "add", "-A"], a)
    run(["git", "commit", "-qm", "ran the DAG"], a)
    run(["dvc", "push"], a)
    return root, a


def test_generated_results_are_tracked_by_git_and_small(team):
    _, a = team
    tracked = run(["git", "ls-files"], a).stdout.split()
    assert {"metrics/sample/masa.json", "reports/runs/sample/masa.json", "reports/metrics.md",
            "losses/sample/masa/loss.tsv", "losses/sample/fusion_late/fused.tsv"} <= set(tracked)
    assert not [t for t in tracked if t.startswith(("data/", "models/", "plots/", "timings/"))]
    headline = json.loads((a / "metrics" / "sample" / "masa.json").read_text())
    assert set(headline) == {"tau", "tau_content", "ap10", "cls100", "progress", "act_ret10", "action"}
    shown = run(["dvc", "metrics", "show"], a).stdout
    assert max(len(line) for line in shown.splitlines()) < 120, shown  # one line per run, fits a terminal


def test_pulled_clone_is_up_to_date_with_caches_beside_the_code(team):
    root, _ = team
    b = root / "b"
    run(["git", "clone", "-q", str(root / "a"), str(b)], root)
    run(["dvc", "pull"], b)
    # what any use of the code leaves in the tree without this project's settings: bytecode and numba's cache
    compile_numba = ("import numpy as np; from model.blocks import dtw; "
                     "dtw.mirror_dtw_matrix(np.zeros((2, 4, 3), np.float32))")
    run(["python", "-c", compile_numba], b, NUMBA_CACHE_DIR=None, PYTHONDONTWRITEBYTECODE=None)
    assert list((b / "model" / "blocks" / "__pycache__").glob("*.nbi")), "numba wrote no cache to test with"
    assert run(["dvc", "status"], b).stdout.strip() == "Data and pipelines are up to date."
    assert git_changes(b) == ""


def test_fresh_clone_recomputes_the_same_bytes(team):
    root, _ = team
    c = root / "c"
    run(["git", "clone", "-q", str(root / "a"), str(c)], root)
    out = run(["dvc", "repro"], c, PYTHONDONTWRITEBYTECODE=None).stdout
    assert "train@sample-masa" in ran_stages(out)  # nothing pulled: every stage ran
    assert git_changes(c) == "", run(["git", "diff"], c).stdout[:3000]


def test_experiment_reruns_only_what_changed_and_metrics_diff_between_commits(team):
    root, _ = team
    d = root / "d"
    run(["git", "clone", "-q", str(root / "a"), str(d)], root)
    run(["dvc", "pull"], d)
    out = run(["dvc", "exp", "run", "-S", "masa.relate_weight=0.6"], d).stdout
    assert ran_stages(out) == {"train@sample-masa", "evaluate@sample-masa", "report"}, out
    table = json.loads(run(["dvc", "exp", "show", "--json"], d).stdout)
    experiment = next(e for rev in table for e in rev.get("experiments") or [] if e.get("revs"))
    data = experiment["revs"][0]["data"]
    assert data["params"]["params.yaml"]["data"]["masa"]["relate_weight"] == 0.6
    assert "tau" in data["metrics"]["metrics/sample/masa.json"]["data"]
    shown = run(["dvc", "exp", "show", "--only-changed", "--md"], d).stdout  # --md: not cut to the terminal
    header = shown.splitlines()[0]
    assert "masa.relate_weight" in header and "metrics/sample/masa.json:" in header, shown

    run(["git", "add", "-A"], d)
    run(["git", "commit", "-qm", "relate_weight 0.6"], d)
    diff = run(["dvc", "metrics", "diff", "HEAD~1", "HEAD", "--json"], d).stdout
    changes = json.loads(diff)
    assert set(changes) == {"metrics/sample/masa.json"}  # fusion_late did not move
    assert {"old", "new", "diff"} <= set(next(iter(changes["metrics/sample/masa.json"].values())))


def test_plots_show_draws_every_loss_term(team):
    _, a = team
    plots = json.loads(run(["dvc", "plots", "show", "--json"], a).stdout)["data"]
    assert {"losses/sample/masa/loss.tsv", "losses/sample/masa/matching.tsv", "losses/sample/fusion_late/heatmap.tsv",
            "losses/sample/fusion_late/fused.tsv"} <= set(plots)
    assert (a / "plots" / "sample" / "fusion_late" / "loss.png").is_file()

"""Loss curves as DVC plots: one TSV per term, wall-clock fields left out, consistent after a resume."""

from __future__ import annotations

import pytest

from stages.shared.loss_curves import LossCurves, prune, read, terms


def _records(steps):
    return [{"step": s, "epoch": s // 4, "loss": 1.0 / s, "matching": 0.25 / s, "lr": 0.001, "elapsed_s": 0.1 * s,
             "seq_per_s": 12.5, "flag": True} for s in steps]


def test_one_file_per_term_without_wall_clock_fields(tmp_path):
    curves = LossCurves(tmp_path / "masa")
    for record in _records([10, 20]):
        curves.append(record)
    assert [p.name for p in curves.files()] == ["loss.tsv", "lr.tsv", "matching.tsv"]
    assert (tmp_path / "masa" / "loss.tsv").read_text() == "step\tepoch\tloss\n10\t2\t0.1\n20\t5\t0.05\n"
    assert read(tmp_path / "masa" / "matching.tsv") == ("matching", [(10, 2, 0.025), (20, 5, 0.0125)])
    assert terms({"step": 1, "epoch": 0, "loss": float("nan"), "x": 1.0}) == ["x"]


def test_truncate_drops_rows_logged_after_the_checkpoint(tmp_path):
    curves = LossCurves(tmp_path / "casa")
    for record in _records([10, 20, 30]):
        curves.append(record)
    curves.truncate(20)
    assert [step for step, _, _ in read(tmp_path / "casa" / "loss.tsv")[1]] == [10, 20]
    curves.truncate(0)  # training from scratch
    assert curves.files() == [] and (tmp_path / "casa").is_dir()  # the DVC output still exists


def test_prune_removes_the_other_layouts_curves(tmp_path):
    for folder in (tmp_path, tmp_path / "jump", tmp_path / "squat"):
        LossCurves(folder).append(_records([1])[0])
    prune(tmp_path, [tmp_path])  # back to one model for all activities
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.tsv")) == [
        "loss.tsv", "lr.tsv", "matching.tsv"]


def test_a_malformed_row_names_the_file_and_line(tmp_path):
    path = tmp_path / "loss.tsv"
    path.write_text("step\tepoch\tloss\n1\t0\t0.5\n2\t0\n")
    with pytest.raises(ValueError, match=r"loss.tsv:3"):
        read(path)

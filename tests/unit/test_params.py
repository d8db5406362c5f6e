from dataclasses import dataclass
from typing import Literal

import pytest

from pipeline.params import (
    ParamsError,
    check_params_file,
    from_dict,
    load_section,
    read_params_file,
)


@dataclass(frozen=True)
class Inner:
    size: int
    sigma: float


@dataclass(frozen=True)
class Section:
    model: str
    pooling: Literal["cls", "mean", "cls+mean"]
    batch: int
    inner: Inner
    ks: tuple[int, ...]
    device: str | None


FULL = "s:\n  model: m\n  pooling: cls\n  batch: 4\n  inner: {size: 30, sigma: 2}\n  ks: [1, 2]\n  device: null\n"


def write(tmp_path, text):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def test_loads_typed_values(tmp_path):
    got = load_section("s", Section, write(tmp_path, FULL))
    assert got == Section(model="m", pooling="cls", batch=4, inner=Inner(size=30, sigma=2.0), ks=(1, 2), device=None)
    assert isinstance(got.inner.sigma, float)


@pytest.mark.parametrize(
    "text, message",
    [
        (FULL + "  batchh: 4\n", "unknown key(s) ['batchh']"),
        (FULL.replace("  model: m\n", ""), "missing key(s) ['model']"),
        (FULL.replace("  device: null\n", ""), "missing key(s) ['device']"),  # even an Optional one
        (FULL.replace("{size: 30, sigma: 2}", "{size: 30}"), "s.inner: missing key(s) ['sigma']"),
        (FULL.replace("batch: 4", "batch: 4.5"), "s.batch: expected an integer"),
        (FULL.replace("pooling: cls", "pooling: max"), "not one of"),
        (FULL.replace("sigma: 2}", "sigma: 2, colour: red}"), "s.inner: unknown key(s) ['colour']"),
        ("other: {}\n", "no section 's'"),
    ],
)
def test_rejects_bad_sections_naming_file_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ParamsError) as err:
        load_section("s", Section, path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_dataset_overrides_apply_only_to_that_dataset(tmp_path):
    path = write(tmp_path, FULL + "  overrides:\n    sample: {model: tiny, inner: {size: 10}}\n")
    assert load_section("s", Section, path).model == "m"
    got = load_section("s", Section, path, dataset="sample")
    assert (got.model, got.inner.size, got.inner.sigma) == ("tiny", 10, 2.0)


def test_override_keys_are_validated_too(tmp_path):
    path = write(tmp_path, FULL + "  overrides:\n    sample: {modle: tiny}\n")
    with pytest.raises(ParamsError, match="modle"):
        load_section("s", Section, path, dataset="sample")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ParamsError, match="params file not found"):
        load_section("s", Section, tmp_path / "nope.yaml")


def test_optional_and_bool_strictness():
    raw = {"model": "m", "pooling": "cls", "batch": 4, "inner": {"size": 3, "sigma": 1.0}, "ks": [5], "device": None}
    assert from_dict(Section, raw, where="x").device is None
    with pytest.raises(ParamsError):
        from_dict(Section, {**raw, "batch": True}, where="x")


def test_the_shipped_params_file_loads_every_section_strictly():
    """Every stage's and method's section of the repository's params.yaml, for every dataset it overrides."""
    import importlib
    from pathlib import Path

    import yaml

    from model.registry import get_method, method_names
    from model.trainer import TrainParams

    path = Path(__file__).resolve().parents[2] / "params.yaml"
    data = yaml.safe_load(path.read_text())
    classes = {name: get_method(name).params_cls for name in method_names()}
    classes["train"] = TrainParams
    for section in set(data) - set(classes) - {"dag"}:
        module = importlib.import_module(f"stages.{section}")
        classes[section] = getattr(module, "".join(w.title() for w in section.split("_")) + "Params")
    for section, cls in classes.items():
        for dataset in [None, *(data[section].get("overrides") or {})]:
            load_section(section, cls, path, dataset=dataset)


def test_the_repository_params_name_only_known_sections_and_datasets():
    from pipeline.cli import known_sections
    from pipeline.manifest import load_manifest
    from tests.conftest import REPO

    check_params_file(REPO / "params.yaml", sections=known_sections(),
                      datasets=load_manifest(REPO / "data_manifest.yaml").names)


@pytest.mark.parametrize("text, message", [
    ("decoed: {crop: 224}\n", r"unknown section\(s\) \['decoed'\]"),
    ("heatmaps: {size: 30, overrides: {sampel: {size: 20}}}\n", r"heatmaps.overrides names dataset\(s\) \['sampel'\]"),
    ("heatmaps: {size: 30, overrides: [sample]}\n", "heatmaps.overrides must be a mapping"),
])
def test_unknown_sections_and_override_datasets_are_errors(tmp_path, text, message):
    """Both used to be ignored silently."""
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError, match=message):
        check_params_file(path, sections={"decode", "heatmaps", "dag"}, datasets={"sample"})


def test_a_yaml_syntax_error_names_the_file_and_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("decode:\n  crop: [224\n  resize_short: 256\n")
    with pytest.raises(ParamsError, match=r"params.yaml: line \d+, column \d+: not valid YAML"):
        read_params_file(path)

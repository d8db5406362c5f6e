from dataclasses import dataclass, field
from typing import Literal

import pytest

from pipeline.params import ParamsError, from_dict, load_section


@dataclass(frozen=True)
class Inner:
    size: int = 30
    sigma: float = 1.5


@dataclass(frozen=True)
class Section:
    model: str
    pooling: Literal["cls", "mean", "cls+mean"] = "cls+mean"
    batch: int = 8
    inner: Inner = field(default_factory=Inner)
    ks: tuple[int, ...] = (5, 10)
    device: str | None = None


def write(tmp_path, text):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def test_loads_typed_values_and_defaults(tmp_path):
    path = write(tmp_path, "s:\n  model: m\n  batch: 4\n  inner: {sigma: 2}\n  ks: [1, 2]\n")
    got = load_section("s", Section, path)
    assert got == Section(model="m", batch=4, inner=Inner(sigma=2.0), ks=(1, 2))
    assert isinstance(got.inner.sigma, float)


@pytest.mark.parametrize(
    "text, message",
    [
        ("s:\n  model: m\n  batchh: 4\n", "unknown key(s) ['batchh']"),
        ("s:\n  batch: 4\n", "missing key 'model'"),
        ("s:\n  model: m\n  batch: 4.5\n", "s.batch: expected an integer"),
        ("s:\n  model: m\n  pooling: max\n", "not one of"),
        ("s:\n  model: m\n  inner: {size: 3, colour: red}\n", "s.inner: unknown key(s) ['colour']"),
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
    path = write(tmp_path, "s:\n  model: big\n  overrides:\n    sample: {model: tiny, inner: {size: 10}}\n")
    assert load_section("s", Section, path).model == "big"
    got = load_section("s", Section, path, dataset="sample")
    assert (got.model, got.inner.size, got.inner.sigma) == ("tiny", 10, 1.5)


def test_override_keys_are_validated_too(tmp_path):
    path = write(tmp_path, "s:\n  model: m\n  overrides:\n    sample: {modle: tiny}\n")
    with pytest.raises(ParamsError, match="modle"):
        load_section("s", Section, path, dataset="sample")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ParamsError, match="params file not found"):
        load_section("s", Section, tmp_path / "nope.yaml")


def test_optional_and_bool_strictness():
    assert from_dict(Section, {"model": "m", "device": None}, where="x").device is None
    with pytest.raises(ParamsError):
        from_dict(Section, {"model": "m", "batch": True}, where="x")

"""Strict, typed loading of `params.yaml` sections into frozen dataclasses.

`params.yaml` is the one tracked source of every value that changes an output. Each stage declares a
frozen dataclass for its section, with no defaults in code; `load_section` fills it and refuses unknown or
missing keys, so a typo or an omitted key in `params.yaml` fails loudly instead of silently running with a
value nobody wrote down.

A section may carry `overrides: {<dataset>: {<key>: <value>}}` for per-dataset values (the sample
dataset points `extract_dino.model` at a small local checkpoint, say). The override is applied before
validation and the resolved values are what artifacts record.

`check_params_file` refuses what no section loader would notice: an unknown top-level section (a
misspelt `decoed:`) and an override for a dataset the manifest does not describe (`overrides.sampel`).
The caller (the CLI) supplies the known section and dataset names, so this module imports no stage.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import yaml

T = TypeVar("T")
DEFAULT_PARAMS = Path("params.yaml")


class ParamsError(ValueError):
    """A params file or section is missing, malformed, or holds unknown/ill-typed keys."""


def read_params_file(path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"params file not found: {path} (run from the repository root or pass --params)")
    data = read_yaml(path, ParamsError)
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping of sections at top level")
    return data


def read_yaml(path: Path, error: type[Exception]) -> Any:
    """The parsed YAML file; `error` naming the file, line and column for a syntax error."""
    try:
        with path.open() as fh:
            # an empty file loads as None
            return yaml.safe_load(fh) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        # PyYAML marks are 0-based
        at = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        raise error(f"{path}:{at}: not valid YAML: {problem}") from err


def check_params_file(path: str | Path, *, sections: Iterable[str], datasets: Iterable[str]) -> None:
    """ParamsError for a top-level section not in `sections`, or an `overrides` entry naming a dataset
    not in `datasets` (the manifest's), each naming the file and the key."""
    data = read_params_file(path)
    sections, datasets = sorted(set(sections)), sorted(set(datasets))
    unknown = sorted(set(data) - set(sections))
    if unknown:
        raise ParamsError(f"{path}: unknown section(s) {unknown}; known: {sections}")
    for name, section in data.items():
        if not isinstance(section, dict) or section.get("overrides") is None:
            continue
        overrides = section["overrides"]
        if not isinstance(overrides, dict):
            raise ParamsError(f"{path}: {name}.overrides must be a mapping of dataset -> values")
        strangers = sorted(set(overrides) - set(datasets))
        if strangers:
            raise ParamsError(f"{path}: {name}.overrides names dataset(s) {strangers} that the manifest does not "
                              f"describe; known: {datasets}")


def load_section(
    section: str,
    cls: type[T],
    path: str | Path = DEFAULT_PARAMS,
    *,
    dataset: str | None = None,
    data: dict[str, Any] | None = None,
) -> T:
    """Load `params.yaml[section]` (with `overrides[dataset]` applied) into the frozen dataclass `cls`.

    `section` may be a dotted path into a section's nested blocks ("masa.augment"); overrides apply at the
    section level before the path is followed. Raises ParamsError naming the file, section and key for a
    missing section, an unknown key, a missing key, or a value of the wrong type.
    """
    data = read_params_file(path) if data is None else data
    top, *inner = section.split(".")
    if top not in data:
        raise ParamsError(f"{path}: no section '{top}'")
    raw = dict(data[top] or {})
    # popped: from_dict would refuse `overrides` as an unknown key
    overrides = raw.pop("overrides", None) or {}
    if dataset is not None and dataset in overrides:
        extra = overrides[dataset] or {}
        if not isinstance(extra, dict):
            raise ParamsError(f"{path}: {top}.overrides.{dataset} must be a mapping")
        # deep: overriding one key of a nested block keeps its other keys
        raw = _deep_merge(raw, extra)
    for depth, key in enumerate(inner):
        if not isinstance(raw, dict) or key not in raw:
            raise ParamsError(f"{path}: no block '{'.'.join([top, *inner[: depth + 1]])}'")
        raw = raw[key]
    return from_dict(cls, raw, where=f"{path}: {section}")


def from_dict(cls: type[T], raw: dict[str, Any], *, where: str) -> T:
    """Build dataclass `cls` from a mapping, recursing into nested dataclasses; strict about keys and types."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{where}: expected a mapping, got {type(raw).__name__}")
    # get_type_hints, not the fields' `type`: with `from __future__ import annotations` those are strings
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ParamsError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(fields)}")
    missing = [name for name in fields if name not in raw]
    if missing:  # no code defaults: params.yaml alone says what ran
        raise ParamsError(f"{where}: missing key(s) {missing}; every key of a section is spelled out")
    return cls(**{name: _coerce(raw[name], hints[name], where=f"{where}.{name}") for name in fields})


def to_dict(obj: Any) -> dict[str, Any]:
    """The resolved params as plain JSON-able data, for recording inside artifacts."""
    return dataclasses.asdict(obj)


def _coerce(value: Any, hint: Any, *, where: str) -> Any:
    origin = get_origin(hint)
    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where=where)
    if origin is Literal:
        if value not in get_args(hint):
            raise ParamsError(f"{where}: {value!r} is not one of {list(get_args(hint))}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where=where)
            except ParamsError as err:
                errors.append(str(err))
        raise ParamsError(f"{where}: {value!r} matches none of {args}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"{where}: expected a list, got {value!r}")
        args = get_args(hint)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ParamsError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, a, where=f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        items = [_coerce(v, item, where=f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"{where}: expected a mapping, got {value!r}")
        kt, vt = get_args(hint) or (Any, Any)
        return {_coerce(k, kt, where=where): _coerce(v, vt, where=f"{where}.{k}") for k, v in value.items()}
    if hint is float:
        # bool is a subclass of int: without this, YAML `true` would pass as the number 1
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{where}: expected a number, got {value!r}")
        # YAML `1` is an int: as a float it records (and fingerprints) the same as `1.0`
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{where}: expected true/false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ParamsError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out

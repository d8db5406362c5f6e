"""`data_manifest.yaml`: where each dataset's raw data lives and how to read it.

Every entry has a `kind` (which adapter in `pipeline.datasets` reads it) and a `root`. Paths may be
relative (to the manifest's folder) and may use `${ENV_VAR}` or `${ENV_VAR:-default}`. Keys are checked
per kind when the manifest loads (a YAML syntax error names the file and line); environment variables,
the root and the files an entry names are resolved and checked only when that dataset is selected, so
an unset `${H2O_ROOT}` does not stop work on another dataset.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pipeline.params import read_yaml

log = logging.getLogger(__name__)
DEFAULT_MANIFEST = Path("data_manifest.yaml")
Kind = Literal["penn_action", "h2o", "ikea_asm", "videos"]

COMMON_KEYS = {"kind", "root", "fps", "layout", "description"}
KIND_KEYS: dict[str, set[str]] = {
    # labels/NNNN.mat (+ optional frames/NNNN/*.jpg); split and actions come from the .mat files
    "penn_action": {"actions"},
    # <subject>/<scene>/<seq>/<camera>/{rgb,hand_pose}; segment labels and the alignment split
    "h2o": {"camera", "labels", "split", "activity"},
    # <furniture>/<recording>/<camera>/images/scan_video.avi + openpose json; segment CSV
    "ikea_asm": {"camera", "labels", "split", "furniture"},
    # any folder of videos; optional sequences.csv, labels.csv, poses/<seq>.npz
    "videos": {"videos", "sequences", "labels", "poses", "label_names", "extensions"},
}
DEFAULT_LAYOUT = {"penn_action": "penn13", "h2o": "hands42", "ikea_asm": "body25", "videos": "penn13"}
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ManifestError(ValueError):
    """The manifest is malformed, names an unknown dataset or kind, or points at missing data."""


@dataclass(frozen=True)
class DatasetSpec:
    """One validated manifest entry. `options` holds the kind-specific keys (already path-resolved)."""

    name: str
    kind: Kind
    root: Path
    fps: float
    layout: str
    options: dict[str, Any] = field(default_factory=dict)
    manifest: Path = DEFAULT_MANIFEST

    def path(self, key: str, default: str | None = None) -> Path | None:
        """A kind-specific path option resolved against `root` (None when absent and no default)."""
        value = self.options.get(key, default)
        if value is None:
            return None
        p = Path(value)
        return p if p.is_absolute() else self.root / p

    def check_root(self) -> None:
        if not self.root.exists():
            raise ManifestError(
                f"dataset '{self.name}': root {self.root} does not exist "
                f"(set 'root' in {self.manifest}{_env_hint(self)})"
            )


@dataclass(frozen=True)
class Manifest:
    """The checked entries of a manifest; `get` resolves one of them (its environment variables, paths)."""

    path: Path
    entries: dict[str, dict[str, Any]]

    @property
    def names(self) -> list[str]:
        return sorted(self.entries)

    @property
    def datasets(self) -> dict[str, DatasetSpec]:
        """Every entry resolved (an unset variable in any entry raises: prefer `get` for one dataset)."""
        return {name: self.get(name, check_root=False) for name in self.entries}

    def get(self, name: str, *, check_root: bool = True) -> DatasetSpec:
        if name not in self.entries:
            raise ManifestError(f"unknown dataset '{name}' in {self.path}; known: {self.names}")
        spec = _parse_entry(name, self.entries[name], self.path.resolve().parent, self.path)
        if check_root:
            spec.check_root()
        return spec


def load_manifest(path: str | Path = DEFAULT_MANIFEST) -> Manifest:
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path} (run from the repository root or pass --manifest)")
    raw = read_yaml(path, ManifestError)
    if not isinstance(raw, dict) or not isinstance(raw.get("datasets"), dict):
        raise ManifestError(f"{path}: expected a top-level 'datasets:' mapping of name -> entry")
    unknown_top = set(raw) - {"datasets"}
    if unknown_top:
        raise ManifestError(f"{path}: unknown top-level key(s) {sorted(unknown_top)}")
    for name, entry in raw["datasets"].items():
        _check_entry(name, entry, path)
    return Manifest(path=path, entries=dict(raw["datasets"]))


def project_datasets(manifest: Manifest) -> list[str]:
    """The dataset names params.yaml's overrides may use: those of `manifest` and of the project's own
    `data_manifest.yaml` (in the working directory), so that a second manifest for one dataset can share
    the project's params.yaml."""
    names = set(manifest.names)
    if DEFAULT_MANIFEST.is_file() and DEFAULT_MANIFEST.resolve() != manifest.path.resolve():
        try:
            names |= set(load_manifest(DEFAULT_MANIFEST).names)
        except ManifestError as err:  # not the manifest in use: its defects are reported when it is used
            log.debug("ignoring %s: %s", DEFAULT_MANIFEST, err)
    return sorted(names)


def _check_entry(name: str, entry: Any, path: Path) -> None:
    """The checks that need no environment: name, kind, keys, fps, layout."""
    where = f"{path}: dataset '{name}'"
    if not re.match(r"^[a-z0-9_]+$", str(name)):
        raise ManifestError(f"{where}: dataset names use lowercase letters, digits and '_'")
    if not isinstance(entry, dict):
        raise ManifestError(f"{where}: expected a mapping")
    kind = entry.get("kind")
    if kind not in KIND_KEYS:
        raise ManifestError(f"{where}: key 'kind' is {kind!r}; known kinds: {sorted(KIND_KEYS)}")
    unknown = sorted(set(entry) - COMMON_KEYS - KIND_KEYS[kind])
    if unknown:
        allowed = sorted(COMMON_KEYS | KIND_KEYS[kind])
        raise ManifestError(f"{where}: unknown key(s) {unknown} for kind '{kind}'; allowed: {allowed}")
    if "root" not in entry:
        raise ManifestError(f"{where}: missing key 'root'")
    fps = entry.get("fps", 30.0)
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or fps <= 0:
        raise ManifestError(f"{where}: key 'fps' must be a positive number, got {fps!r}")
    layout = str(entry.get("layout", DEFAULT_LAYOUT[kind]))
    from pipeline.skeletons.layouts import LAYOUTS

    if layout not in LAYOUTS:
        raise ManifestError(f"{where}: key 'layout' is {layout!r}; known layouts: {sorted(LAYOUTS)}")


def _parse_entry(name: str, entry: dict[str, Any], base: Path, path: Path) -> DatasetSpec:
    """A checked entry resolved: environment variables expanded, paths made absolute."""
    _check_entry(name, entry, path)
    where = f"{path}: dataset '{name}'"
    kind = entry["kind"]
    root = Path(expand_env(str(entry["root"]), where=f"{where}, key 'root'"))
    root = root if root.is_absolute() else (base / root).resolve()
    options = {}
    for key in KIND_KEYS[kind] & set(entry):
        options[key] = _resolve_option(entry[key], base, where=f"{where}, key '{key}'")
    layout = str(entry.get("layout", DEFAULT_LAYOUT[kind]))
    return DatasetSpec(name=name, kind=kind, root=root, fps=float(entry.get("fps", 30.0)), layout=layout,
                       options=options, manifest=path)


def _resolve_option(value: Any, base: Path, *, where: str) -> Any:
    """Expand ${VAR} in string options; make '../'-style relative paths relative to the manifest's folder."""
    if isinstance(value, str):
        value = expand_env(value, where=where)
        if value.startswith(("./", "../")):
            return str((base / value).resolve())
    return value


def expand_env(text: str, *, where: str) -> str:
    def sub(match: re.Match) -> str:
        var, default = match.group(1), match.group(2)
        if var in os.environ:
            return os.environ[var]
        if default is not None:
            return default
        raise ManifestError(f"{where}: environment variable ${{{var}}} is not set")

    return _ENV.sub(sub, text)


def _env_hint(spec: DatasetSpec) -> str:
    return f", or the environment variable it names, for kind '{spec.kind}'"


def replace(spec: DatasetSpec, **changes: Any) -> DatasetSpec:
    return dataclasses.replace(spec, **changes)

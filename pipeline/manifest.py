"""`data_manifest.yaml`: where each dataset's raw data lives and how to read it.

Every entry has a `kind` (which adapter in `pipeline.datasets` reads it) and a `root`. Paths may be
relative (to the manifest's folder) and may use `${ENV_VAR}` or `${ENV_VAR:-default}`. Keys are checked
per kind when the manifest loads; the root (and the files an entry names) are checked when a dataset is
selected, so an unset `${H2O_ROOT}` does not stop work on another dataset.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

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
    path: Path
    datasets: dict[str, DatasetSpec]

    def get(self, name: str, *, check_root: bool = True) -> DatasetSpec:
        if name not in self.datasets:
            raise ManifestError(f"unknown dataset '{name}' in {self.path}; known: {sorted(self.datasets)}")
        spec = self.datasets[name]
        if check_root:
            spec.check_root()
        return spec


def load_manifest(path: str | Path = DEFAULT_MANIFEST) -> Manifest:
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path} (run from the repository root or pass --manifest)")
    with path.open() as fh:
        raw = yaml.safe_load(fh) or {}
    if not isinstance(raw, dict) or not isinstance(raw.get("datasets"), dict):
        raise ManifestError(f"{path}: expected a top-level 'datasets:' mapping of name -> entry")
    unknown_top = set(raw) - {"datasets"}
    if unknown_top:
        raise ManifestError(f"{path}: unknown top-level key(s) {sorted(unknown_top)}")
    base = path.resolve().parent
    datasets = {name: _parse_entry(name, entry, base, path) for name, entry in raw["datasets"].items()}
    return Manifest(path=path, datasets=datasets)


def _parse_entry(name: str, entry: Any, base: Path, path: Path) -> DatasetSpec:
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
    root = Path(expand_env(str(entry["root"]), where=f"{where}, key 'root'"))
    root = root if root.is_absolute() else (base / root).resolve()
    fps = entry.get("fps", 30.0)
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or fps <= 0:
        raise ManifestError(f"{where}: key 'fps' must be a positive number, got {fps!r}")
    options = {}
    for key in KIND_KEYS[kind] & set(entry):
        value = entry[key]
        options[key] = _resolve_option(value, base, where=f"{where}, key '{key}'")
    layout = str(entry.get("layout", DEFAULT_LAYOUT[kind]))
    from pipeline.skeletons.layouts import LAYOUTS

    if layout not in LAYOUTS:
        raise ManifestError(f"{where}: key 'layout' is {layout!r}; known layouts: {sorted(LAYOUTS)}")
    return DatasetSpec(name=name, kind=kind, root=root, fps=float(fps), layout=layout, options=options, manifest=path)


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

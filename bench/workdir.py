"""Benchmarks' work folders: a StageContext over one dataset of the repository's manifest, with the
repository's params.yaml plus `section.key=value` overrides written to <work>/params.yaml."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def make_context(work: Path, dataset: str, overrides: list[str], store_root: Path | None = None):
    """A StageContext rooted in `work` (models/, metrics/, data/<dataset>/index.parquet there); artifacts under
    `store_root` (default work/data). Overrides are YAML values: `train.epochs=5`, `vasot.reg_m=null`."""
    from pipeline.context import StageContext
    from pipeline.manifest import load_manifest

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"override '{item}' is not SECTION.KEY=VALUE")
        *path, last = key.split(".")
        node = params
        for part in path:
            node = node.setdefault(part, {})
        node[last] = yaml.safe_load(value)
    work.mkdir(parents=True, exist_ok=True)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    spec = load_manifest(ROOT / "data_manifest.yaml").get(dataset)
    return StageContext(dataset=spec, params_path=work / "params.yaml",
                        store_root=str(store_root or work / "data"), workdir=work)

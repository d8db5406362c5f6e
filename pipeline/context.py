"""What a stage needs to know about where it runs: the dataset, the params file and the output paths.

The CLI builds one `StageContext` per command from its flags (which choose *what* and *where*), and
passes it to `stages.<name>.run`. Every *how* comes from `params.yaml` through `ctx.params(...)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pipeline.manifest import DatasetSpec
from pipeline.params import DEFAULT_PARAMS, load_section

T = TypeVar("T")

# Where a project's outputs live, relative to its working directory (one place for these conventions).
MODELS, METRICS, PLOTS, REPORTS = "models", "metrics", "plots", "reports"


def metrics_root(workdir: Path = Path(".")) -> Path:
    """The folder of every dataset's metrics files (`<root>/<dataset>/<method>.json`), read by `report`."""
    return Path(workdir) / METRICS


@dataclass(frozen=True)
class StageContext:
    """dataset: the manifest entry; store_root: local folder or fsspec URL holding `<dataset>/<artifact>.zarr`;
    scheduler: a dask.distributed address, or None for local workers."""

    dataset: DatasetSpec
    params_path: Path = DEFAULT_PARAMS
    store_root: str = "data"
    scheduler: str | None = None
    workers: int = 1
    workdir: Path = Path(".")

    @property
    def name(self) -> str:
        return self.dataset.name

    def params(self, section: str, cls: type[T]) -> T:
        """The resolved params section (with this dataset's overrides) as its frozen dataclass."""
        return load_section(section, cls, self.params_path, dataset=self.dataset.name)

    def artifact(self, name: str) -> str:
        """URL of this dataset's artifact store `name` (frames, dino, keypoints, heatmaps, embeddings_<m>)."""
        return f"{self.store_root.rstrip('/')}/{self.dataset.name}/{name}.zarr"

    @property
    def data_dir(self) -> Path:
        """Local folder for this dataset's small files (index.parquet, checkpoints written by make-sample)."""
        return self.workdir / "data" / self.dataset.name

    @property
    def index_path(self) -> Path:
        return self.data_dir / "index.parquet"

    def models_dir(self, method: str) -> Path:
        return self.workdir / MODELS / self.dataset.name / method

    def metrics_path(self, method: str) -> Path:
        return metrics_root(self.workdir) / self.dataset.name / f"{method}.json"

    def plots_dir(self, method: str) -> Path:
        return self.workdir / PLOTS / self.dataset.name / method


def default_workers() -> int:
    import os

    return max(1, len(os.sched_getaffinity(0)))

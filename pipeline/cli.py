"""The `pipeline` command: one subcommand per stage, named as in dvc.yaml and params.yaml.

Commands stay thin: parse flags, build a StageContext, call `stages.<name>.run`. Heavy libraries are
imported inside the commands so that `pipeline --help` is instant, and only after the closed choices
(method, device, dataset) are checked, so a typo fails in milliseconds with the valid values.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from pipeline import __version__

log = logging.getLogger("pipeline")

# Errors a user can act on: printed as one message (the traceback only with -v).
USER_ERRORS = (
    "pipeline.device.DeviceError",
    "pipeline.manifest.ManifestError",
    "pipeline.params.ParamsError",
    "pipeline.sequences.IndexTableError",
    "pipeline.store.StoreError",
    "pipeline.runner.StageError",
    "pipeline.datasets.DatasetError",
    "pipeline.dino.model.ModelUnavailableError",
    "pipeline.skeletons.estimator.EstimatorError",
    "pipeline.skeletons.convert.ConversionError",
    "stages.evaluate.EvaluateError",
    "stages.embed.EmbedError",
    "stages.shared.align_sources.AlignError",
)


class PipelineGroup(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except Exception as err:  # turn known user errors into clean messages
            name = f"{type(err).__module__}.{type(err).__qualname__}"
            if any(name == e for e in USER_ERRORS) and logging.getLogger().level > logging.DEBUG:
                raise click.ClickException(str(err)) from err
            raise


dataset_option = click.option("--dataset", "-d", required=True, help="Dataset name from the manifest.")
scheduler_option = click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="dask.distributed scheduler address (e.g. tcp://host:8786); default: local workers.",
)
workers_option = click.option(
    "--workers", "-j", type=int, default=None, help="Local worker processes (default: all cores)."
)


class MethodChoice(click.Choice):
    """The registered methods (`model.registry`, the one method list), read only when a command needs them:
    the registry names its methods without importing torch, so `--method masaa` fails in milliseconds."""

    def __init__(self, extra: tuple[str, ...] = ()):
        self.extra = extra
        super().__init__((), case_sensitive=True)

    @property
    def choices(self) -> tuple[str, ...]:
        from model.registry import method_names

        return (*method_names(), *self.extra)

    @choices.setter
    def choices(self, value) -> None:  # click.Choice.__init__ assigns it; the registry decides
        pass


def _check_device(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from pipeline.device import DeviceError, check_device_name

    try:
        return check_device_name(value)
    except DeviceError as err:
        raise click.BadParameter(str(err)) from err


device_option = click.option(
    "--device", default="auto", show_default=True, callback=_check_device, help="auto, cpu, cuda or cuda:N."
)


@click.group(cls=PipelineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pipeline")
@click.option("-v", "--verbose", count=True, help="Debug logging, and full tracebacks on errors.")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
@click.option(
    "--manifest",
    type=click.Path(path_type=Path),
    default=Path("data_manifest.yaml"),
    show_default=True,
    help="Dataset manifest to use.",
)
@click.option(
    "--params",
    "params_path",
    type=click.Path(path_type=Path),
    default=Path("params.yaml"),
    show_default=True,
    help="Params file (the tracked source of every value that changes an output).",
)
@click.option(
    "--store-root",
    default="data",
    show_default=True,
    help="Folder or fsspec URL under which <dataset>/<artifact>.zarr stores live.",
)
@click.pass_context
def main(ctx: click.Context, verbose: int, quiet: bool, manifest: Path, params_path: Path, store_root: str):
    """Extract video features once, cache them in Zarr under DVC, and train/evaluate alignment models."""
    # numba's on-disk cache beside the code would sit inside DVC dependencies (`model`, `pipeline/...`); keep it
    # with the project's other caches (before any command imports numba)
    os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(".cache", "numba").resolve()))
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger().setLevel(level)
    from tqdm.contrib.logging import logging_redirect_tqdm

    ctx.with_resource(logging_redirect_tqdm())  # log lines print above a running progress bar, not through it
    ctx.obj = {"manifest": manifest, "params": params_path, "store_root": store_root}


def make_context(obj: dict, dataset: str, *, scheduler: str | None = None, workers: int | None = None, check_root: bool = True):
    from pipeline.context import StageContext, default_workers
    from pipeline.manifest import load_manifest, project_datasets
    from pipeline.params import check_params_file

    manifest = load_manifest(obj["manifest"])
    check_params_file(obj["params"], sections=known_sections(), datasets=project_datasets(manifest))
    spec = manifest.get(dataset, check_root=check_root)
    return StageContext(
        dataset=spec,
        params_path=obj["params"],
        store_root=obj["store_root"],
        scheduler=scheduler,
        workers=workers or default_workers(),
    )


def known_sections() -> set[str]:
    """The params.yaml sections something reads: one per command (named like its stage), one per registered
    method, and `dag` (dvc.yaml's templating). Collected here, lazily, so that pipeline imports no stage."""
    from model.registry import method_names

    return {name.replace("-", "_") for name in main.commands} | set(method_names()) | {"dag"}


@main.command("make-sample")
@click.option("--dataset", "-d", default="sample", show_default=True, help="Manifest entry (kind 'videos') to write.")
@click.pass_obj
def make_sample(obj, dataset):
    """Generate the synthetic sample dataset (videos, keypoints, labels) into the entry's root."""
    ctx = make_context(obj, dataset, check_root=False)
    from stages import make_sample as stage

    stage.run(ctx)


@main.command("index")
@dataset_option
@click.pass_obj
def index(obj, dataset):
    """Index a dataset's sequences into data/<dataset>/index.parquet."""
    ctx = make_context(obj, dataset)
    from stages import index as stage

    stage.run(ctx)


@main.command("decode")
@dataset_option
@scheduler_option
@workers_option
@click.pass_obj
def decode(obj, dataset, scheduler, workers):
    """Decode videos / frame folders to data/<dataset>/frames.zarr at the dataset fps."""
    ctx = make_context(obj, dataset, scheduler=scheduler, workers=workers)
    from stages import decode as stage

    stage.run(ctx)


@main.command("extract-dino")
@dataset_option
@scheduler_option
@device_option
@click.pass_obj
def extract_dino(obj, dataset, scheduler, device):
    """Run frozen DINOv2 over decoded frames into data/<dataset>/dino.zarr."""
    ctx = make_context(obj, dataset, scheduler=scheduler)
    from stages import extract_dino as stage

    stage.run(ctx, device=device)


@main.command("estimate-pose")
@dataset_option
@scheduler_option
@workers_option
@click.pass_obj
def estimate_pose(obj, dataset, scheduler, workers):
    """Estimate 2D poses (MediaPipe BlazePose) of videos without pose files into data/<dataset>/poses.zarr."""
    from stages import estimate_pose as stage

    stage.run(make_context(obj, dataset, scheduler=scheduler, workers=workers))


@main.command("keypoints")
@dataset_option
@scheduler_option
@workers_option
@click.pass_obj
def keypoints(obj, dataset, scheduler, workers):
    """Read or lift 2D/3D keypoints into data/<dataset>/keypoints.zarr."""
    ctx = make_context(obj, dataset, scheduler=scheduler, workers=workers)
    from stages import keypoints as stage

    stage.run(ctx)


@main.command("heatmaps")
@dataset_option
@scheduler_option
@workers_option
@click.pass_obj
def heatmaps(obj, dataset, scheduler, workers):
    """Rasterise joint/limb heatmaps into data/<dataset>/heatmaps.zarr."""
    ctx = make_context(obj, dataset, scheduler=scheduler, workers=workers)
    from stages import heatmaps as stage

    stage.run(ctx)


@main.command("train")
@dataset_option
@click.option("--method", "-m", required=True, type=MethodChoice(), help="A registered alignment method.")
@device_option
@click.pass_obj
def train(obj, dataset, method, device):
    """Train an alignment model from the cached artifacts; write its checkpoint and embeddings."""
    ctx = make_context(obj, dataset, check_root=False)
    from stages import train as stage

    stage.run(ctx, method=method, device=device)


@main.command("evaluate")
@dataset_option
@click.option("--method", "-m", required=True, type=MethodChoice(extra=("raw",)),
              help="Method whose embeddings to evaluate ('raw': the baselines alone).")
@click.option("--trained-on", default=None, help="Embed with the model trained on this other dataset.")
@device_option
@click.pass_obj
def evaluate(obj, dataset, method, trained_on, device):
    """Evaluate embeddings with the literature's protocol into metrics/<dataset>/<method>.json."""
    ctx = make_context(obj, dataset, check_root=False)
    from stages import evaluate as stage

    stage.run(ctx, method=method, trained_on=trained_on, device=device)


@main.command("embed")
@dataset_option
@click.option("--model", "model_dir", required=True, type=click.Path(path_type=Path),
              help="A trained model folder, models/<dataset>/<method>.")
@device_option
@click.pass_obj
def embed(obj, dataset, model_dir, device):
    """Embed a dataset with a trained model into data/<dataset>/embeddings_<method>_from_<trained-on>.zarr."""
    from stages import embed as stage

    stage.run(make_context(obj, dataset, check_root=False), model_dir=model_dir, device=device)


@main.command("report")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Also write the table to this file.")
@click.pass_obj
def report(obj, out):
    """Print one markdown table of every metrics file beside the papers' numbers."""
    from stages import report as stage

    stage.run(workdir=Path("."), out=out)


@main.command("align")
@click.argument("video_a")
@click.argument("video_b")
@click.option("--out", "-o", type=click.Path(path_type=Path), required=True, help="Folder for the outputs.")
@click.option("--model", type=click.Path(path_type=Path), default=None,
              help="A trained model folder models/<D>/<method> (default: align normalised poses).")
@click.option("--cache", type=click.Path(path_type=Path), default=Path(".cache/align"), show_default=True,
              help="Workspaces of aligned video files, keyed by content.")
@device_option
@click.pass_obj
def align(obj, video_a, video_b, out, model, cache, device):
    """Align two videos frame by frame (files, or DATASET:SEQ): CSV, JSON, side-by-side video, HTML page."""
    from stages import align as stage
    from stages import estimate_pose, index, keypoints

    request = stage.AlignRequest(video_a, video_b, out, model, device, obj["params"], obj["manifest"],
                                 obj["store_root"], cache)
    document = stage.run(request, upstream=(index.run, estimate_pose.run, keypoints.run))
    click.echo(document["summary_text"])
    click.echo(f"open {out / 'alignment.html'}")


@main.command("export")
@dataset_option
@click.option("--artifact", "-a", required=True, help="Artifact store to export (frames, dino, keypoints, heatmaps, ...).")
@click.option("--format", "fmt", type=click.Choice(["h5"]), default="h5", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Output file (default data/<D>/<artifact>.h5).")
@click.pass_obj
def export(obj, dataset, artifact, fmt, out):
    """Copy an artifact store to HDF5 for tools that read HDF5."""
    ctx = make_context(obj, dataset, check_root=False)
    from stages import export as stage

    stage.run(ctx, artifact=artifact, fmt=fmt, out=out)


if __name__ == "__main__":
    main()

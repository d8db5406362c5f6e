"""decode and extract-dino on the generated sample project (H.264 videos, its random-weight DINOv2)."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.sequences import read_index
from pipeline.store import ArtifactStore


def test_sample_project_decodes_and_embeds_on_the_index_timeline(project):
    cli = CliRunner()
    for args in (["decode", "-d", "sample", "-j", "1"], ["extract-dino", "-d", "sample", "--device", "cpu"]):
        result = cli.invoke(main, ["-q", *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    index = read_index("data/sample/index.parquet")
    frames, dino = ArtifactStore("data/sample/frames.zarr"), ArtifactStore("data/sample/dino.zarr")
    assert frames.sequences() == dino.sequences() == sorted(index.ids)
    hidden = dino.provenance["feature_dim"] // 2
    for row in index.rows():
        rgb = frames.read(row["id"], "rgb")
        assert rgb.shape == (row["n_frames"], 224, 224, 3)
        # the sample's videos play at make_sample.video_fps (24), its timeline is 12 fps: every other frame
        np.testing.assert_allclose(np.diff(frames.read(row["id"], "timestamp")), 1 / row["fps"], atol=1e-6)
        feature = dino.read(row["id"], "feature")
        assert feature.shape == (row["n_frames"], 2 * hidden) and np.isfinite(feature).all()
    assert dino.provenance["model"].endswith("dinov2-random") and dino.provenance["pooling"] == "cls+mean"

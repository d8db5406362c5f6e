"""`pipeline embed`: a trained model embeds a dataset exactly as the train stage embedded it, converts keypoints
of another layout, reuses what is current, and refuses inputs the dataset cannot provide, naming both sides."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.skeletons.layouts import get_layout
from pipeline.store import ArtifactStore
from stages import embed, train
from tests.integration.test_train import DINO_DIM, _write_dataset, _write_params


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny MASA (keypoints) and early-fusion model (DINO + keypoints) trained through the train stage."""
    root = tmp_path_factory.mktemp("embed")
    ctx = _write_dataset(root, per_activity=(2, 1))
    _write_params(root, {"epochs": 1, "batch_size": 8})
    train.run(ctx, "masa", device="cpu")
    train.run(ctx, "fusion_early", device="cpu")
    return ctx


def _copy(ctx, tmp_path, name="other", layout=None):
    """Another dataset (a copy of the trained one's index and stores under another name)."""
    from dataclasses import replace

    spec = replace(ctx.dataset, name=name, layout=layout or ctx.dataset.layout)
    other = replace(ctx, dataset=spec, store_root=str(tmp_path / "data"), workdir=tmp_path)
    shutil.copytree(ctx.data_dir, other.data_dir, ignore=shutil.ignore_patterns("embeddings_*"))
    return other


def test_embed_equals_the_train_stage_s_own_embeddings(trained):
    summary = embed.run(trained, trained.models_dir("masa"), device="cpu")
    ours = ArtifactStore(trained.artifact("embeddings_masa_from_synth"))
    theirs = ArtifactStore(trained.artifact("embeddings_masa"))
    assert sorted(summary.computed) == theirs.sequences() == ours.sequences()
    for seq in theirs.sequences():
        np.testing.assert_array_equal(ours.read(seq, "embedding"), theirs.read(seq, "embedding"))
    prov = ours.provenance
    assert prov["stage"] == "embed" and prov["method"] == "masa" and prov["trained_on"] == "synth"
    assert prov["params"]["None"]["layout"] == "penn13" and len(prov["model_fingerprint"]) == 32
    again = embed.run(trained, trained.models_dir("masa"), device="cpu")  # nothing changed: nothing embedded
    assert again.computed == [] and len(again.skipped) == len(theirs.sequences())


def test_estimated_blazepose_keypoints_are_converted_to_the_model_s_layout(trained, tmp_path):
    """The same skeletons written as blazepose33 (person's sides, ears at Penn's head) embed as the originals."""
    other = _copy(trained, tmp_path, layout="blazepose33")
    penn, blaze = get_layout("penn13"), get_layout("blazepose33")
    store = ArtifactStore(other.artifact("keypoints"), mode="a")
    store.set_provenance(stage="test", params={}, layout="blazepose33")
    for seq in store.sequences():
        joints = store.read(seq, "joints_2d")
        out = np.zeros((len(joints), blaze.n_joints, 3), np.float32)
        for name in penn.joints:
            if name == "head":
                out[:, [blaze.index("l_ear"), blaze.index("r_ear")]] = joints[:, None, penn.index("head")]
            else:  # Penn's columns hold the other side (swapped_sides)
                side = {"l": "r", "r": "l"}[name[0]] + name[1:]
                out[:, blaze.index(side)] = joints[:, penn.index(name)]
        store.write_sequence(seq, {"joints_2d": (out, ("time", "joint", "coord"))}, fingerprint=f"{seq}-blaze")
    embed.run(other, trained.models_dir("masa"), device="cpu")
    ours = ArtifactStore(other.artifact("embeddings_masa_from_synth"))
    assert ours.provenance["conversion"] == "blazepose33->penn13"
    theirs = ArtifactStore(trained.artifact("embeddings_masa"))
    for seq in theirs.sequences()[:4]:
        np.testing.assert_allclose(ours.read(seq, "embedding"), theirs.read(seq, "embedding"), atol=1e-5)


def test_a_layout_without_conversion_is_refused_naming_both(trained, tmp_path):
    other = _copy(trained, tmp_path, layout="hands42")
    ArtifactStore(other.artifact("keypoints"), mode="a").set_provenance(stage="test", params={}, layout="hands42")
    with pytest.raises(embed.EmbedError, match=r"reads penn13 keypoints; dataset other has hands42 keypoints.*"
                                               r"cannot convert hands42 joints to penn13"):
        embed.run(other, trained.models_dir("masa"), device="cpu")
    assert not (other.data_dir / "embeddings_masa_from_synth.zarr").exists()


def test_missing_and_mismatched_arrays_are_refused_naming_both(trained, tmp_path):
    other = _copy(trained, tmp_path)
    shutil.rmtree(other.data_dir / "dino.zarr")
    with pytest.raises(embed.EmbedError, match=r"fusion_early reads dino/feature; dataset other has no .*dino\.zarr "
                                               r"\(run `pipeline extract-dino --dataset other`\)"):
        embed.run(other, trained.models_dir("fusion_early"), device="cpu")
    dino = ArtifactStore(other.artifact("dino"), mode="a")
    dino.set_provenance(stage="test", params={})
    for seq in ArtifactStore(other.artifact("keypoints")).sequences():
        n = len(ArtifactStore(other.artifact("keypoints")).read(seq, "joints_2d"))
        dino.write_sequence(seq, {"feature": (np.zeros((n, DINO_DIM // 2), np.float16), ("time", "feature"))},
                            fingerprint=seq)
    with pytest.raises(embed.EmbedError, match=rf"reads 'feature' frames of shape \({DINO_DIM},\); dataset other "
                                               rf"provides \({DINO_DIM // 2},\)"):
        embed.run(other, trained.models_dir("fusion_early"), device="cpu")


def test_the_command_names_a_missing_model_folder(trained, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from tests.conftest import REPO

    manifest = (REPO / "data_manifest.yaml").read_text() + "\n  synth: {kind: videos, root: .}\n"
    (tmp_path / "data_manifest.yaml").write_text(manifest)
    shutil.copy(trained.params_path, tmp_path / "params.yaml")
    result = CliRunner().invoke(main, ["embed", "--dataset", "synth", "--model", "models/nowhere/masa"])
    assert result.exit_code == 1 and "models/nowhere/masa/checkpoint.pt" in result.output, result.output
    assert "Traceback" not in result.output


def test_the_train_stage_writes_a_model_card(trained):
    import json

    from stages.shared.model_card import write_model_card

    card = (trained.models_dir("masa") / "MODEL_CARD.md").read_text()
    assert card.startswith("# masa trained on synth")
    assert "| squat | 2 |" in card and "split(s) train: 8 sequences" in card
    assert "`blazepose33`" in card and "`body25`" in card and "skeleton layout: `penn13`" in card
    assert "pipeline embed --dataset <D> --model models/synth/masa" in card
    assert "relate_weight: 0.3" in card and "embed_batch_size:" in card and "package version: 0.1.0" in card
    assert "Headline metrics: `metrics/synth/masa.json`" in card and "reports/runs/synth/masa.json" in card
    assert "/" + str(trained.workdir).strip("/") + "/" not in card  # no machine path: the folder hashes the same anywhere

    metrics = trained.metrics_path("masa")  # an evaluation does not change the card (DVC hashes the folder)
    metrics.parent.mkdir(parents=True, exist_ok=True)
    metrics.write_text(json.dumps({"tau": 0.5}))
    write_model_card(trained.models_dir("masa"), index_path=trained.index_path)
    assert (trained.models_dir("masa") / "MODEL_CARD.md").read_text() == card

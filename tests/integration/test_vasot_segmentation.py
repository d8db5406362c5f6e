"""VASOT trained by the project's trainer segments generated phased motion better than k-means on the raw
keypoints (the issue's acceptance check, on the sample generator's motion without rendering videos)."""

import numpy as np
import pytest
import torch

from model.metrics.segmentation import cluster_scores
from pipeline.datasets import synthetic
from tests.repo_params import repo_params

ACTIVITY = "jumping_jack"


def _sequences(count: int, seed: int):
    out = []
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        out.append(synthetic.sample_sequence(ACTIVITY, rng, fps=10, seconds=rng.uniform(3, 6), image_size=160,
                                             missing_joint_prob=0.02))
    return out


def _hungarian_mof(preds: list[np.ndarray], truths: list[np.ndarray]) -> float:
    """Frame accuracy after one-to-one matching of clusters to phases over all videos."""
    return cluster_scores(preds, truths)["mof"]


def _raw_coordinates(joints_2d: np.ndarray) -> np.ndarray:
    from model.inputs.skeleton import normalise, split_joints
    from pipeline.skeletons.layouts import get_layout

    xy, conf = split_joints(torch.as_tensor(joints_2d)[None], True)
    mask = torch.ones(1, len(joints_2d), dtype=torch.bool)
    return normalise(xy, conf, mask, get_layout("penn13"), "sequence")[0].flatten(1).numpy()


@pytest.mark.slow
def test_vasot_segmentation_beats_kmeans_on_raw_keypoints():
    from sklearn.cluster import KMeans

    from model.embedder import Embedder
    from model.method import InputSpec
    from model.methods.vasot import Vasot, VasotParams
    from model.trainer import Trainer, TrainParams

    n_phases = len(synthetic.ACTIVITIES[ACTIVITY]["phases"])
    train, val = _sequences(10, seed=0), _sequences(5, seed=1)
    truths = [s.phase for s in val]

    kmeans = KMeans(n_phases, n_init=10, random_state=0).fit(np.concatenate([_raw_coordinates(s.joints_2d) for s in train]))
    baseline = _hungarian_mof([kmeans.predict(_raw_coordinates(s.joints_2d)) for s in val], truths)

    torch.manual_seed(0)
    params = repo_params("vasot", VasotParams, d_model=64, mlp_hidden=64, proj_hidden=64, proj_dim=32, n_prototypes=n_phases)
    model = Vasot.build(params, InputSpec({"joints_2d": (13, 3)}, "penn13"))
    train_params = repo_params("train", TrainParams, epochs=15, batch_size=5, bucket_edges=(1000,), log_every=10)
    items = [{"joints_2d": s.joints_2d} for s in train]
    Trainer(model, train_params, items, [ACTIVITY] * len(items), torch.device("cpu")).run(lambda r: None, lambda: None)

    labels = Embedder({None: model}, Vasot.inputs(params)).segment_many([{"joints_2d": s.joints_2d} for s in val])
    assert _hungarian_mof(labels, truths) > baseline + 0.1

"""The DTW teacher of clip vectors (MASA's and LA2DS's `relate_*` params), no labels needed.

Before training, every two training sequences are compared by dynamic time warping of their normalised
skeletons, each resampled to the same number of frames, a sequence's mirror image allowed to match
(`model.blocks.dtw.mirror_dtw_matrix`): a speed- and handedness-free comparison of whole motions, which
tells Penn Action's actions apart better than a learned clip vector did (docs/research-log.md). Each step, the
softmax over the batch of a clip vector's cosine similarities to the others must follow the softmax of the
negative DTW distances (`model.losses.alignment.relation_distillation_loss`), for both views.

Where the skeletons come from is the method's business (MASA: its keypoint input; LA2DS: the joint
channels' centroids in its heatmaps); this module takes them normalised, (N, L, K, D).

The distances are not checkpointed: they follow from the training set alone, so a resumed run computes them
again (`prepare` runs on resume; Penn Action's 1172 x 1172 take ~5 s), and the checkpoint `embed` loads
carries no training-set-sized matrix.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np
import torch

from model.blocks.dtw import mirror_dtw_matrix
from model.inputs.skeleton_augment import flip
from model.losses.alignment import relation_distillation_loss

log = logging.getLogger(__name__)


class DtwTeacher:
    """The (N, N) DTW distances between a method's N training sequences, and the loss that distils them.

    temperature / teacher_temperature: of the student's cosine softmax and the teacher's distance softmax;
    max_sequences: the largest N accepted (time and memory grow with N squared); owner: the method's name
    for messages."""

    def __init__(self, *, temperature: float, teacher_temperature: float, max_sequences: int, owner: str):
        self.temperature, self.teacher_temperature = temperature, teacher_temperature
        self.max_sequences, self.owner = max_sequences, owner
        self.distance: torch.Tensor | None = None  # (N, N), set by fit()

    def check_size(self, n: int) -> None:
        """Refuse `n` training sequences above max_sequences, before any skeleton is read."""
        if n > self.max_sequences:
            raise ValueError(
                f"{self.owner}: relate_weight > 0 compares every two of the {n} training sequences by DTW (time "
                f"and memory grow with the square), above relate_max_sequences={self.max_sequences}; set "
                "relate_weight: 0 or raise relate_max_sequences")

    def fit(self, curves: np.ndarray | torch.Tensor, flip_permutation: Sequence[int]) -> None:
        """curves: (N, L, K, D) normalised skeletons (root-centred, so a mirror image is x -> -x with the
        layout's left/right joints swapped; missing joints at 0), every sequence resampled to L frames."""
        self.check_size(len(curves))
        started = time.perf_counter()
        log.info("relate: DTW between every two of %d training sequences (grows with the square)", len(curves))
        x = torch.as_tensor(np.asarray(curves, dtype=np.float32))
        N = x.shape[0]
        mirrored = flip(x, tuple(flip_permutation), torch.zeros(N), torch.ones(N, dtype=torch.bool))
        distance = mirror_dtw_matrix(x.flatten(2).numpy(), mirrored.flatten(2).numpy())
        self.distance = torch.as_tensor(distance, dtype=torch.float32)
        log.info("relate: DTW matrix done in %.1f s", time.perf_counter() - started)

    def loss(self, c1: torch.Tensor, c2: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
        """c1, c2: (B, d) clip vectors of the two views of the batch's sequences, which are training
        sequences `index` (B,) -> the mean of both views' distillation losses (B >= 3: over a single other
        sequence a softmax says nothing; the caller skips smaller batches)."""
        if self.distance is None or index is None:
            raise ValueError(f"{self.owner}: relate_weight > 0 needs prepare(training sequences) first and batches "
                             "that carry their rows' positions among them (Trainer.run does both)")
        rows = index.cpu()
        teacher = self.distance[rows][:, rows]
        return 0.5 * (relation_distillation_loss(c1, teacher, self.temperature, self.teacher_temperature)
                      + relation_distillation_loss(c2, teacher, self.temperature, self.teacher_temperature))

"""The training loop of every alignment method: seeded, resumable, length-bucketed, bfloat16 autocast on CUDA
(and on a CPU when asked: `train.autocast`).

The loop holds no files: it reports log records and checkpoint moments through callbacks, and its whole
state (weights, optimiser, scheduler, step) round-trips through `state_dict`. Every random draw of step s
comes from generators seeded by (seed, s) (batch order from (seed, epoch)), so training resumed from a
checkpoint at step s continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from model.batch import collate
from model.buckets import batches_per_epoch, epoch_batches
from model.host_memory import keep_freed_memory
from model.method import AlignmentMethod, Progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainParams:
    """seed: every random draw; epochs / max_steps (0: no cap): training length; lr decays by lr_gamma at the
    lr_milestones epochs; multi_activity: one model for all activities (else one per activity);
    train_splits: index splits the model trains on; bucket_edges: sequence lengths that separate the
    length buckets of the batches; log_every: steps per log record; checkpoint_every: epochs per
    checkpoint; embed_batch_size: sequences per batch when embedding; autocast: the training step's precision
    ("auto": bfloat16 autocast on CUDA, float32 on a CPU; "bfloat16": autocast on either; "off": float32)."""

    seed: int
    epochs: int
    max_steps: int
    batch_size: int
    lr: float
    weight_decay: float
    lr_milestones: tuple[int, ...]
    lr_gamma: float
    grad_clip: float
    multi_activity: bool
    train_splits: tuple[str, ...]
    bucket_edges: tuple[int, ...]
    log_every: int
    checkpoint_every: int
    embed_batch_size: int
    autocast: Literal["auto", "bfloat16", "off"]


def _native_cpu_bf16() -> bool:
    """Whether oneDNN runs bfloat16 natively on this CPU (the check PyTorch's own tests use)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def autocast_enabled(setting: str, device: torch.device) -> bool:
    """Whether training steps on `device` run under bfloat16 autocast (TrainParams.autocast)."""
    if setting not in ("auto", "bfloat16", "off"):
        raise ValueError(f"train.autocast is {setting!r}: expected auto, bfloat16 or off")
    return setting == "bfloat16" or (setting == "auto" and device.type == "cuda")


def step_seed(seed: int, step: int) -> int:
    """A 63-bit seed for step `step` of a run seeded with `seed`."""
    return int(np.random.SeedSequence([seed, step]).generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))


class Trainer:
    """Trains `model` on in-memory sequences ({array name: (T, ...)} each) with the stage's TrainParams;
    `ids` name the sequences in error messages."""

    def __init__(
        self,
        model: AlignmentMethod,
        params: TrainParams,
        sequences: Sequence[dict[str, np.ndarray]],
        activities: Sequence[str],
        device: torch.device,
        ids: Sequence[str] | None = None,
    ):
        if not sequences:
            raise ValueError("no training sequences")
        self.model = model.to(device)
        self.params = params
        self.sequences = sequences
        self.activities = list(activities)
        self.ids = list(ids) if ids is not None else [str(i) for i in range(len(sequences))]
        self.device = device
        self.lengths = [len(next(iter(s.values()))) for s in sequences]
        self.n_batches = batches_per_epoch(self.lengths, params.bucket_edges, params.batch_size)
        planned = params.epochs * self.n_batches
        self.total_steps = min(planned, params.max_steps) if params.max_steps > 0 else planned
        self.optimizer = torch.optim.Adam(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
        milestones = [m * self.n_batches for m in params.lr_milestones]
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, milestones, gamma=params.lr_gamma)
        self.step = 0
        self.autocast = autocast_enabled(params.autocast, device)
        keep_freed_memory()  # each step's large tensors reuse the last step's memory (model/host_memory.py)
        if self.autocast and device.type == "cpu" and not _native_cpu_bf16():
            log.warning("train.autocast: bfloat16 on this CPU runs emulated (no AVX512-BF16 / AMX): expect it slower "
                        "than float32 (set train.autocast: auto)")

    @property
    def done(self) -> bool:
        return self.step >= self.total_steps

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])

    def train_step(self, positions: np.ndarray, epoch: int) -> tuple[float, dict[str, float]]:
        """One optimisation step on the sequences at `positions`; returns the loss and the method's scalars."""
        seed = step_seed(self.params.seed, self.step)
        torch.manual_seed(seed)  # dropout and any other draw from the global generator
        gen = torch.Generator().manual_seed(seed)
        batch = collate([self.sequences[i] for i in positions], [self.activities[i] for i in positions], positions)
        batch = batch.to(self.device)
        self.model.train()
        progress = Progress(epoch=epoch, step=self.step, epochs=self.params.epochs)
        try:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                loss, scalars = self.model.loss(batch, gen, progress)
        except (ValueError, IndexError) as err:
            names = [self.ids[i] for i in positions]
            raise RuntimeError(f"training step {self.step} failed on sequences {names}: {err}") from err
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {float(loss)} at step {self.step} (epoch {epoch}); scalars {scalars}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.params.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.params.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return float(loss.detach()), scalars

    def run(
        self,
        on_log: Callable[[dict[str, Any]], None],
        on_checkpoint: Callable[[], None],
        *,
        desc: str = "train",
    ) -> None:
        """Train from the current step to `total_steps`, calling `on_log` every `log_every` steps and
        `on_checkpoint` every `checkpoint_every` epochs and at the end. First the method's `prepare` sees every
        training sequence (on resume too; not when nothing is left to train). Records carry `elapsed_s`, the
        seconds since this call started training, `prepare` included."""
        from tqdm.auto import tqdm

        p = self.params
        bar = tqdm(total=self.total_steps, initial=self.step, desc=desc, unit="step", dynamic_ncols=True)
        window: list[tuple[float, dict[str, float], int]] = []
        tick = started = time.perf_counter()
        self.model.prepare(self.sequences)  # counted in elapsed_s: it is part of training
        start_epoch = self.step // self.n_batches
        for epoch in range(start_epoch, p.epochs):
            batches = epoch_batches(self.lengths, p.bucket_edges, p.batch_size, seed=p.seed, epoch=epoch)
            for i, positions in enumerate(batches):
                if epoch * self.n_batches + i < self.step:
                    continue  # done before the interruption we resume from
                if self.done:
                    break
                loss, scalars = self.train_step(positions, epoch)
                window.append((loss, scalars, len(positions)))
                bar.update(1)
                if self.step % p.log_every == 0 or self.done:
                    record = self._record(window, epoch, time.perf_counter() - tick)
                    record["elapsed_s"] = time.perf_counter() - started
                    bar.set_postfix(loss=f"{record['loss']:.4f}", seq_s=f"{record['seq_per_s']:.1f}")
                    on_log(record)
                    window, tick = [], time.perf_counter()
            if (epoch + 1) % p.checkpoint_every == 0 or self.done:
                on_checkpoint()
            if self.done:
                break
        bar.close()

    def _record(self, window: list[tuple[float, dict[str, float], int]], epoch: int, seconds: float) -> dict[str, Any]:
        n_seq = sum(n for _, _, n in window)
        record: dict[str, Any] = {
            "step": self.step,
            "epoch": epoch,
            "loss": float(np.mean([loss for loss, _, _ in window])),
        }
        keys = dict.fromkeys(k for _, scalars, _ in window for k in scalars)  # a staged method may change keys
        for key in keys:
            record[key] = float(np.mean([scalars[key] for _, scalars, _ in window if key in scalars]))
        record["lr"] = self.optimizer.param_groups[0]["lr"]
        record["seq_per_s"] = n_seq / max(seconds, 1e-9)  # a window of cached steps can take ~0 s
        return record

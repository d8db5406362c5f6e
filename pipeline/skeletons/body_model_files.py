"""Finding and safely loading the licensed SMPL / MANO model files.

The official `.pkl` files are Python 2 pickles holding `chumpy` arrays (chumpy does not install on
Python 3.11 + NumPy 2) and a scipy.sparse joint regressor. `RestrictedUnpickler` reads them without
chumpy or scipy objects ever being built from file data: chumpy classes and sparse matrices become plain
holders, converted to ndarrays afterwards, and every global outside a short allow-list (NumPy array
reconstruction, a few builtins) is refused, so a malicious pickle cannot run code. `.npz` files (the
same keys) are read with `allow_pickle=False`.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any, Literal

import numpy as np

log = logging.getLogger(__name__)

URLS = {"smpl": "https://smpl.is.tue.mpg.de", "mano": "https://mano.is.tue.mpg.de"}
SMPL_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")
MANO_KEYS = SMPL_KEYS + ("hands_components", "hands_mean")
_BUILTINS = {"object", "set", "frozenset", "complex", "slice", "bytearray"}
_SPARSE = {"csc_matrix", "csr_matrix"}


class BodyModelError(RuntimeError):
    """A body model file is missing, unsafe or malformed; the message names the file."""


def model_file(directory: str | Path, kind: Literal["smpl", "mano"], *, gender: str = "neutral", side: str = "right") -> Path:
    """Path of `SMPL_<GENDER>` or `MANO_<SIDE>` (.pkl or .npz) in `directory` or its `smpl/` / `mano/` folder."""
    directory = Path(directory)
    stem = f"SMPL_{gender.upper()}" if kind == "smpl" else f"MANO_{side.upper()}"
    candidates = [folder / f"{stem}{ext}" for folder in (directory, directory / kind) for ext in (".pkl", ".npz")]
    for path in candidates:
        if path.is_file():
            return path
    raise BodyModelError(
        f"{kind.upper()} model file {stem}.pkl (or .npz) not found; looked for {', '.join(map(str, candidates))}. "
        f"The model is licensed: register at {URLS[kind]}, download it, and put {stem}.pkl in {directory} "
        f"(keypoints.body_model_dir in params.yaml)."
    )


def load_model_data(path: str | Path, kind: Literal["smpl", "mano"]) -> dict[str, np.ndarray]:
    """The arrays smplx needs (SMPL_KEYS, plus MANO_KEYS for MANO) from a .pkl or .npz model file, checked."""
    path = Path(path)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            raw: dict[str, Any] = {k: data[k] for k in data.files}
    else:
        raw = safe_load_pickle(path)
        if not isinstance(raw, dict):
            raise BodyModelError(f"{path}: expected a dict of model arrays, got {type(raw).__name__}")
    keys = MANO_KEYS if kind == "mano" else SMPL_KEYS
    missing = [k for k in keys if k not in raw]
    if missing:
        raise BodyModelError(f"{path}: not a {kind.upper()} model file, missing key(s) {missing}")
    try:
        data = {k: _to_array(raw[k]) for k in keys}
    except (TypeError, ValueError) as err:
        raise BodyModelError(f"{path}: cannot convert model arrays: {err}") from err
    _check_shapes(data, path)
    return data


def safe_load_pickle(path: str | Path) -> Any:
    """Unpickle `path` with `RestrictedUnpickler` (latin1 for Python 2 pickles); refuses unsafe globals."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            # latin1 maps each byte to one code point, so Python 2 str objects holding array data decode byte for byte
            return RestrictedUnpickler(fh, encoding="latin1").load()
    except pickle.UnpicklingError as err:
        raise BodyModelError(f"{path}: refused: {err}") from err
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as err:
        raise BodyModelError(f"{path}: not a readable model pickle: {err!r}") from err


class Holder:
    """Stands in for a pickled chumpy or scipy.sparse object: keeps its state, runs none of its code."""

    source = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _holder(module: str, name: str) -> type[Holder]:
    return type(name, (Holder,), {"source": f"{module}.{name}"})


def _reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """copyreg._reconstructor limited to building holders (how protocol 0/1 pickles create objects)."""
    # with base `object` and no state, _reconstructor is just object.__new__(cls); another base would run that base's
    # __new__ and __init__ on data from the file
    if not (isinstance(cls, type) and issubclass(cls, Holder)) or base is not object or state is not None:
        raise pickle.UnpicklingError(f"copy_reg._reconstructor of {cls!r} is not allowed")
    return cls.__new__(cls)


class RestrictedUnpickler(pickle.Unpickler):
    """Allows NumPy array reconstruction, harmless builtins, and holders for chumpy / scipy.sparse.

    Python 2 pickles name `copy_reg` and `__builtin__`; pickle's `fix_imports` maps them to `copyreg`
    and `builtins` before `find_class` sees them.
    """

    def find_class(self, module: str, name: str) -> Any:
        # pickles from NumPy 1.x name numpy.core, NumPy 2 renamed it numpy._core
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name in ("_reconstruct", "scalar"):
            from numpy._core import multiarray

            return getattr(multiarray, name)
        if module in ("numpy.core.numeric", "numpy._core.numeric") and name == "_frombuffer":
            from numpy._core import numeric

            return numeric._frombuffer
        if module == "_codecs" and name == "encode":  # how protocol <= 2 pickles made by Python 3 store bytes
            import codecs

            return codecs.encode
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if module == "builtins" and name in _BUILTINS:
            return {"object": object, "set": set, "frozenset": frozenset, "complex": complex,
                    "slice": slice, "bytearray": bytearray}[name]
        if module == "copyreg" and name == "_reconstructor":
            return _reconstructor
        if module == "chumpy" or module.startswith("chumpy."):
            return _holder(module, name)
        if module.startswith("scipy.sparse") and name in _SPARSE:
            return _holder(module, name)
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed in a model file")


def _to_array(value: Any) -> np.ndarray:
    """A holder (chumpy array or sparse matrix), ndarray or list as a plain ndarray."""
    if isinstance(value, Holder):
        state = value.state if isinstance(value.state, dict) else {}
        if value.source.startswith("chumpy"):
            if "x" not in state:
                raise ValueError(f"{value.source} object has no stored value 'x' (only plain chumpy arrays are read)")
            return _to_array(state["x"])
        return _sparse_to_dense(value.source, state)
    return np.asarray(value)


def _sparse_to_dense(source: str, state: dict) -> np.ndarray:
    """Rebuild a pickled scipy.sparse matrix from its state arrays only."""
    import scipy.sparse as sp

    try:
        # a scipy matrix pickles as its __dict__, where the shape is the private `_shape`
        shape = tuple(int(s) for s in state["_shape"])
        arrays = (np.asarray(state["data"]), np.asarray(state["indices"]), np.asarray(state["indptr"]))
        matrix = sp.csc_matrix if source.endswith("csc_matrix") else sp.csr_matrix
        return matrix(arrays, shape=shape).toarray()
    except (KeyError, TypeError) as err:
        raise ValueError(f"{source} without the expected arrays ({sorted(state)})") from err


def _check_shapes(data: dict[str, np.ndarray], path: Path) -> None:
    n_verts = data["v_template"].shape[0]
    n_joints = data["kintree_table"].shape[-1]
    expected = {
        "v_template": (n_verts, 3),
        "shapedirs": (n_verts, 3, data["shapedirs"].shape[-1]),
        # pose blend shapes: one 3x3 rotation matrix (9 values) per joint but the root
        "posedirs": (n_verts, 3, 9 * (n_joints - 1)),
        "J_regressor": (n_joints, n_verts),
        "weights": (n_verts, n_joints),
        "kintree_table": (2, n_joints),
    }
    if "hands_mean" in data:
        # MANO: an axis-angle (3 values) per joint but the wrist, i.e. the 15 finger joints
        expected["hands_mean"] = (3 * (n_joints - 1),)
        expected["hands_components"] = (data["hands_components"].shape[0], 3 * (n_joints - 1))
    for key, shape in expected.items():
        if data[key].shape != shape:
            raise BodyModelError(f"{path}: {key} has shape {data[key].shape}, expected {shape}")
    if data["f"].ndim != 2 or data["f"].shape[1] != 3:
        raise BodyModelError(f"{path}: f has shape {data['f'].shape}, expected (F, 3)")


"""MNIST-1D (Greydanus & Kalra, 2020), generated offline with the ``mnist1d`` package.

The dataset is built by ``mnist1d.data.make_dataset`` from its ten 1-D digit templates; the
package's download path (``get_dataset``) is never used. ``make_dataset`` seeds NumPy's
*global* generator; this module saves and restores the global NumPy and ``random`` states so
that generating data leaves the caller's random streams untouched.

Generation is slow-ish (about 1 ms per sample on one CPU core), so results are memoised in the
process and, unless ``cache_dir=False``, cached on disk as ``.npz`` files keyed by every
generator argument (default directory ``$NCLAB_CACHE`` or ``~/.cache/nclab``). A cache file is
read with ``allow_pickle=False`` and used only when it holds the four arrays with the expected
dtypes and shapes, labels in range, and the SHA-256 of their contents stored beside them;
anything else (truncated, damaged, edited, an object array) is regenerated and rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np

from nclab.data.base import Dataset, make_dataset_from_arrays
from nclab.errors import SpecError

__all__ = ["make_mnist1d"]

_MEMO: dict[str, dict[str, np.ndarray]] = {}


def _default_cache_dir() -> Path:
    return Path(os.environ.get("NCLAB_CACHE", Path.home() / ".cache" / "nclab"))


_KEYS = ("x", "y", "x_test", "y_test")


def _checksum(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """SHA-256 over the dtype, shape and bytes of the four arrays, as a (32,) uint8 array."""
    h = hashlib.sha256()
    for k in _KEYS:
        a = np.ascontiguousarray(arrays[k])
        h.update(f"{k}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    return np.frombuffer(h.digest(), dtype=np.uint8).copy()


_LENGTH = 40  # the generator's final_seq_length (package default, never overridden here)


def _expected_sizes(num_samples: int, classes: int, train_split: float) -> tuple[int, int]:
    """(train, test) sizes the generator makes: ``num_samples // classes`` per class, then
    ``int(n * train_split)`` for training (``mnist1d.data.make_dataset``)."""
    n = (num_samples // classes) * classes
    n_train = int(n * train_split)
    return n_train, n - n_train


def _read_cache(path: Path, sizes: tuple[int, int], classes: int) -> dict[str, np.ndarray] | None:
    """The cached arrays when the file is intact and fits the request, else None."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: np.array(z[k]) for k in _KEYS}
            stored = np.array(z["sha256"])
    except Exception:  # noqa: BLE001 - truncated zip, object array, missing key ...: regenerate
        return None
    x, y, xt, yt = (arrays[k] for k in _KEYS)
    ok = (
        x.dtype == np.float32 and xt.dtype == np.float32 and y.dtype == np.int64 and yt.dtype == np.int64
        and x.shape == (sizes[0], _LENGTH) and xt.shape == (sizes[1], _LENGTH)
        and y.shape == (sizes[0],) and yt.shape == (sizes[1],)
        and y.size > 0 and yt.size > 0 and y.min() >= 0 and yt.min() >= 0
        and max(y.max(), yt.max()) < classes
    )
    if not ok or stored.dtype != np.uint8 or not np.array_equal(stored, _checksum(arrays)):
        return None
    return arrays


def _generate(args: dict[str, Any], num_templates: int) -> dict[str, np.ndarray]:
    from mnist1d.data import get_dataset_args, get_templates, make_dataset
    from mnist1d.utils import ObjectView

    full = get_dataset_args(as_dict=True)
    full.update(args)
    templates = get_templates()
    templates = {
        "x": templates["x"][:num_templates],
        "t": templates["t"],
        "y": templates["y"][:num_templates],
    }
    np_state = np.random.get_state()
    py_state = random.getstate()
    try:
        d = make_dataset(ObjectView(full), template=templates)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {
        "x": d["x"].astype(np.float32),
        "y": d["y"].astype(np.int64),
        "x_test": d["x_test"].astype(np.float32),
        "y_test": d["y_test"].astype(np.int64),
    }


def make_mnist1d(
    *,
    num_samples: int = 5000,
    classes: int = 10,
    train_split: float = 0.8,
    seed: int = 42,
    cache_dir: str | os.PathLike[str] | None | bool = None,
) -> Dataset:
    """MNIST-1D, generated offline by ``mnist1d.data.make_dataset``.

    Each sample is a length-40 signal made from one of the digit templates by padding,
    scaling, translation, shear, correlated and i.i.d. noise (the package defaults). The
    whole set is standardised to zero mean and unit variance by the generator itself.

    Parameters
    ----------
    num_samples : int, default=5000
        Total number of samples (train + test), split evenly over the classes
        (``num_samples // classes`` per class, the package's rule).
    classes : int, default=10
        Generate only the first ``classes`` digit templates (the first-N-classes subsetting of
        seed 001, App. A.1.1, done at generation time so that all samples go to those classes).
    train_split : float, default=0.8
        Fraction of the (shuffled) samples used for training.
    seed : int, default=42
        Generator seed (the package default is 42).
    cache_dir : path, None or False, default=None
        Directory of the on-disk ``.npz`` cache; None uses ``$NCLAB_CACHE`` or
        ``~/.cache/nclab``; False disables the disk cache (the in-process memo stays).

    Returns
    -------
    Dataset
        Inputs of shape ``(n, 40)``, ``num_classes == classes``.

    Raises
    ------
    SpecError
        If ``num_samples < 2 * classes``, ``classes`` is outside ``[2, 10]`` or
        ``train_split`` outside ``(0, 1)``.

    Notes
    -----
    Cost: about 1 ms per sample the first time; a cache hit is a file read.
    """
    if not 2 <= int(classes) <= 10:
        raise SpecError(f"classes must be in [2, 10] for MNIST-1D; got {classes}.")
    if int(num_samples) < 2 * int(classes):
        raise SpecError(
            f"num_samples must be at least 2 * classes = {2 * int(classes)}; got {num_samples}."
        )
    if not 0.0 < float(train_split) < 1.0:
        raise SpecError(f"train_split must lie in (0, 1); got {train_split}.")
    args = {"num_samples": int(num_samples), "train_split": float(train_split), "seed": int(seed)}
    key_src = json.dumps({**args, "classes": int(classes), "v": 2}, sort_keys=True)
    key = hashlib.sha1(key_src.encode()).hexdigest()[:16]
    arrays = _MEMO.get(key)
    path: Path | None = None
    if arrays is None and cache_dir is not False:
        root = _default_cache_dir() if cache_dir in (None, True) else Path(cache_dir)  # type: ignore[arg-type]
        path = root / f"mnist1d_{key}.npz"
        if path.is_file():
            sizes = _expected_sizes(int(num_samples), int(classes), float(train_split))
            arrays = _read_cache(path, sizes, int(classes))  # None: regenerated below
    if arrays is None:
        arrays = _generate(args, int(classes))
        if path is not None:
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                np.savez(tmp, sha256=_checksum(arrays), **arrays)
                os.replace(tmp, path)
            except OSError:
                # the cache is an optimisation; an unwritable directory or a full disk is not an error
                try:
                    tmp.unlink()
                except OSError:
                    pass
    _MEMO[key] = arrays
    return make_dataset_from_arrays(
        "mnist1d",
        arrays["x"],
        arrays["y"],
        arrays["x_test"],
        arrays["y_test"],
        num_classes=int(classes),
        info={"generator": "mnist1d.data.make_dataset", **args, "classes": int(classes)},
    )

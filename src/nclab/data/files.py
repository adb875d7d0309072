"""Readers for image datasets a user already has on disk, in their standard layouts.

* MNIST (LeCun et al., 1998) and Fashion-MNIST (Xiao et al., 2017): IDX files
  ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
  ``t10k-labels-idx1-ubyte``, each optionally gzipped (``.gz``), either directly in ``root``
  or in the torchvision layout ``root/MNIST/raw`` / ``root/FashionMNIST/raw``.
* CIFAR-10 (Krizhevsky, 2009): the "python version" pickles ``data_batch_1`` ...
  ``data_batch_5`` and ``test_batch`` in ``root/cifar-10-batches-py`` (torchvision's layout)
  or in ``root``.
* CIFAR-100 (Krizhevsky, 2009): the pickles ``train`` and ``test`` (with ``fine_labels``, 100
  classes, and ``coarse_labels``, 20 superclasses) and ``meta`` in ``root/cifar-100-python``
  (torchvision's layout) or in ``root``.
* SVHN (Netzer et al., 2011): ``train_32x32.mat`` and ``test_32x32.mat`` (MATLAB v5, keys
  ``X`` of shape (32, 32, 3, n) and ``y`` of shape (n, 1) with digit 0 stored as 10), in
  ``root`` (torchvision's layout), ``root/svhn`` or ``root/SVHN``.

The CIFAR pickles are read by a restricted unpickler (:class:`_CifarUnpickler`): a pickle can
name any importable callable and have it run, so only the globals a CIFAR batch needs are
resolved (builtins ``dict``, ``list``, ``str``, ``bytes``, ``int``; NumPy's ``_reconstruct``,
``ndarray``, ``dtype``; ``_codecs.encode`` restricted to latin-1 text, which Python 3 writes
for bytes in protocol-2 pickles) and any other global is refused with one line naming it,
before anything runs. The layouts are documented in ``docs/datasets.md``.

Images are returned as float32 in ``[0, 1]`` with shape (n, channels, H, W); nothing is
downloaded. A missing file raises :class:`~nclab.errors.InputFileError` naming the expected
path and format.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np

from nclab.data.base import Dataset, make_dataset_from_arrays
from nclab.errors import InputFileError, SpecError

__all__ = ["read_idx", "load_mnist", "load_fashion_mnist", "load_cifar10", "load_cifar100", "load_svhn"]

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file (gzipped or not) into a NumPy array.

    Format (LeCun et al., http://yann.lecun.com/exdb/mnist/): two zero bytes, a type byte
    (0x08 = uint8 ...), a byte with the number of dimensions k, k big-endian uint32 sizes,
    then the data in C order. A file whose first two bytes are the gzip magic ``1f 8b`` is
    decompressed first, whatever its name.

    Raises
    ------
    InputFileError
        If the file is missing, truncated or not an IDX file.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise InputFileError(f"cannot read IDX file {p}: {exc.strerror or exc}.") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise InputFileError(f"{p} is a damaged gzip file ({exc}); download it again.") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise InputFileError(
            f"{p} is not an IDX file (expected magic 00 00 <type> <ndim>); got {raw[:4].hex()}."
        )
    dtype = _IDX_DTYPES[raw[2]]
    ndim = raw[3]
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise InputFileError(f"{p} is truncated: header needs {head} bytes, file has {len(raw)}.")
    shape = struct.unpack(f">{ndim}I", raw[4:head])
    count = int(np.prod(shape)) if shape else 1
    if len(raw) - head < count * dtype.itemsize:
        raise InputFileError(
            f"{p} is truncated: shape {shape} needs {count * dtype.itemsize} data bytes, "
            f"file has {len(raw) - head}."
        )
    arr = np.frombuffer(raw, dtype=dtype, count=count, offset=head).reshape(shape)
    return arr.astype(dtype.newbyteorder("="))


def _find(root: Path, subdirs: tuple[str, ...], stem: str, fmt: str) -> Path:
    tried = []
    for sub in subdirs:
        base = root / sub if sub else root
        for name in (stem, stem + ".gz"):
            cand = base / name
            if cand.is_file():
                return cand
        tried.append(str(base / stem) + "[.gz]")
    raise InputFileError(f"missing {fmt} file: expected {tried[0]} (also tried {', '.join(tried[1:]) or 'nothing else'}).")


def _load_idx_dataset(root: str | os.PathLike[str], name: str, torchvision_dir: str) -> Dataset:
    r = Path(root)
    subs = ("", f"{torchvision_dir}/raw", torchvision_dir, "raw")
    fmt = f"{name} IDX"
    files = {
        "x": _find(r, subs, "train-images-idx3-ubyte", fmt),
        "y": _find(r, subs, "train-labels-idx1-ubyte", fmt),
        "x_test": _find(r, subs, "t10k-images-idx3-ubyte", fmt),
        "y_test": _find(r, subs, "t10k-labels-idx1-ubyte", fmt),
    }
    arr = {k: read_idx(v) for k, v in files.items()}
    for k in ("x", "x_test"):
        if arr[k].ndim != 3:
            raise InputFileError(f"{files[k]} must hold images of shape (n, H, W); got {arr[k].shape}.")
    for xk, yk in (("x", "y"), ("x_test", "y_test")):
        if arr[yk].ndim != 1 or arr[yk].shape[0] != arr[xk].shape[0]:
            raise InputFileError(
                f"{files[yk]} must hold {arr[xk].shape[0]} labels to match {files[xk]}; got shape {arr[yk].shape}."
            )
    x = arr["x"][:, None].astype(np.float32) / 255.0
    xt = arr["x_test"][:, None].astype(np.float32) / 255.0
    return make_dataset_from_arrays(
        name, x, arr["y"], xt, arr["y_test"], num_classes=10,
        info={"files": {k: str(v) for k, v in files.items()}},
    )


def load_mnist(root: str | os.PathLike[str]) -> Dataset:
    """MNIST from its four IDX files (gzipped or not) under ``root``; images (n, 1, 28, 28) in [0, 1].

    Raises
    ------
    InputFileError
        If a file is missing (the message names the expected path) or malformed.
    """
    return _load_idx_dataset(root, "mnist", "MNIST")


def load_fashion_mnist(root: str | os.PathLike[str]) -> Dataset:
    """Fashion-MNIST from its four IDX files (same names and layout as MNIST) under ``root``."""
    return _load_idx_dataset(root, "fashion_mnist", "FashionMNIST")


def _latin1_encode(text: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles of bytes use it: str -> bytes in latin-1 only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise pickle.UnpicklingError(f"refusing _codecs.encode({type(text).__name__}, {encoding!r})")
    return text.encode("latin-1")


def _numpy_globals() -> dict[tuple[str, str], Any]:
    try:  # NumPy >= 2 keeps the implementation in numpy._core; pickles name either module
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # pragma: no cover - NumPy 1.x
        from numpy.core.multiarray import _reconstruct
    out: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        out[(mod, "_reconstruct")] = _reconstruct
    return out


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler resolving only the globals of a CIFAR batch; anything else is refused unrun.

    Allowed: builtins ``dict``, ``list``, ``str``, ``bytes``, ``int`` (also under Python 2's
    module name ``__builtin__``), NumPy array reconstruction (``numpy.core.multiarray._reconstruct``
    or ``numpy._core.multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype``) and
    ``_codecs.encode`` for latin-1 text only. The objects are looked up here, not imported by
    name, so no module is imported on a pickle's behalf.
    """

    _BUILTINS = {"dict": dict, "list": list, "str": str, "bytes": bytes, "int": int}

    def find_class(self, module: str, name: str) -> Any:
        if module in ("builtins", "__builtin__") and name in self._BUILTINS:
            return self._BUILTINS[name]
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        found = _numpy_globals().get((module, name))
        if found is not None:
            return found
        raise pickle.UnpicklingError(f"refusing to load the global {module}.{name}")


def _unpickle(path: Path, what: str) -> dict:
    """Read a CIFAR pickle (Python 2 or 3) with :class:`_CifarUnpickler`; a dict or InputFileError."""
    try:
        with path.open("rb") as fh:
            d = _CifarUnpickler(io.BytesIO(fh.read()), encoding="bytes").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        msg = str(exc).replace("\n", " ")
        raise InputFileError(
            f"{path} is not a {what} python pickle batch ({msg}); expected the 'python version' files."
        ) from None
    if not isinstance(d, dict):
        raise InputFileError(f"{path} must unpickle to a dict (a {what} batch); got {type(d).__name__}.")
    return {k.decode("latin-1") if isinstance(k, bytes) else k: v for k, v in d.items()}


def _images(path: Path, d: dict, label_key: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    data, labels = d.get("data"), d.get(label_key)
    if data is None or labels is None:
        raise InputFileError(f"{path} lacks the entries b'data' and b'{label_key}' of a {what} batch.")
    data = np.asarray(data)
    labels = np.asarray(labels)
    if data.dtype != np.uint8 or labels.dtype.kind not in "iu":
        raise InputFileError(
            f"{path}: b'data' must be uint8 and b'{label_key}' integers; got {data.dtype} and {labels.dtype}."
        )
    if data.ndim != 2 or data.shape[1] != 3072 or labels.shape != (data.shape[0],):
        raise InputFileError(
            f"{path}: b'data' must have shape (n, 3072) with n labels; got {data.shape} and {labels.shape}."
        )
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    return _images(path, _unpickle(path, "CIFAR-10"), "labels", "CIFAR-10")


def _label_names(path: Path, key: str, what: str) -> list[str] | None:
    """Class names from a CIFAR meta pickle, or None if the file is absent."""
    if not path.is_file():
        return None
    names = _unpickle(path, what).get(key)
    if not isinstance(names, list):
        raise InputFileError(f"{path} lacks the list b'{key}' of a {what} meta file.")
    return [n.decode("latin-1") if isinstance(n, bytes) else str(n) for n in names]


def load_cifar10(root: str | os.PathLike[str]) -> Dataset:
    """CIFAR-10 from the python pickle batches under ``root`` (or ``root/cifar-10-batches-py``).

    Returns images (n, 3, 32, 32) in [0, 1]: 50000 training and 10000 test images for the
    full files. ``info["class_names"]`` holds the names of ``batches.meta`` when it is present.

    Raises
    ------
    InputFileError
        If a batch is missing (the message names the expected path) or malformed, or a pickle
        names a global a CIFAR batch does not need (refused before it runs).
    """
    r = Path(root)
    subs = ("cifar-10-batches-py", "")
    base = next((r / s for s in subs if (r / s / "test_batch").is_file()), None)
    if base is None:
        raise InputFileError(
            f"missing CIFAR-10 python pickle batch: expected {r / 'cifar-10-batches-py' / 'test_batch'} "
            f"(and data_batch_1..5 beside it), or the same files directly in {r}."
        )
    xs, ys = [], []
    for i in range(1, 6):
        p = base / f"data_batch_{i}"
        if not p.is_file():
            raise InputFileError(f"missing CIFAR-10 python pickle batch: expected {p}.")
        x, y = _read_cifar_batch(p)
        xs.append(x)
        ys.append(y)
    xt, yt = _read_cifar_batch(base / "test_batch")
    info: dict[str, Any] = {"files": str(base)}
    names = _label_names(base / "batches.meta", "label_names", "CIFAR-10")
    if names is not None:
        info["class_names"] = names
    return make_dataset_from_arrays(
        "cifar10",
        np.concatenate(xs).astype(np.float32) / 255.0,
        np.concatenate(ys),
        xt.astype(np.float32) / 255.0,
        yt,
        num_classes=10,
        info=info,
    )


def load_cifar100(root: str | os.PathLike[str], *, label_type: str = "fine") -> Dataset:
    """CIFAR-100 from the python pickles ``train`` and ``test`` under ``root`` (or ``root/cifar-100-python``).

    Parameters
    ----------
    root : path
        Directory holding ``cifar-100-python/`` (torchvision's layout) or the files themselves.
    label_type : {"fine", "coarse"}, default="fine"
        ``fine``: the 100 classes (``fine_labels``); ``coarse``: the 20 superclasses
        (``coarse_labels``).

    Returns
    -------
    Dataset
        Images (n, 3, 32, 32) in [0, 1]: 50000 training and 10000 test images for the full
        files; ``info["class_names"]`` holds the names of ``meta`` when it is present.

    Raises
    ------
    SpecError
        If ``label_type`` is not ``"fine"`` or ``"coarse"``.
    InputFileError
        If a file is missing (the message names the expected path) or malformed, or a pickle
        names a global a CIFAR batch does not need (refused before it runs).
    """
    if label_type not in ("fine", "coarse"):
        raise SpecError(f"label_type must be 'fine' (100 classes) or 'coarse' (20 superclasses); got {label_type!r}.")
    r = Path(root)
    base = next((r / s for s in ("cifar-100-python", "") if (r / s / "test").is_file()), None)
    if base is None:
        raise InputFileError(
            f"missing CIFAR-100 python pickle: expected {r / 'cifar-100-python' / 'test'} (and 'train' beside "
            f"it), or the same files directly in {r}."
        )
    if not (base / "train").is_file():
        raise InputFileError(f"missing CIFAR-100 python pickle: expected {base / 'train'}.")
    key = f"{label_type}_labels"
    x, y = _images(base / "train", _unpickle(base / "train", "CIFAR-100"), key, "CIFAR-100")
    xt, yt = _images(base / "test", _unpickle(base / "test", "CIFAR-100"), key, "CIFAR-100")
    info: dict[str, Any] = {"files": str(base), "label_type": label_type}
    names = _label_names(base / "meta", f"{label_type}_label_names", "CIFAR-100")
    if names is not None:
        info["class_names"] = names
    return make_dataset_from_arrays(
        "cifar100" if label_type == "fine" else "cifar100_coarse",
        x.astype(np.float32) / 255.0, y, xt.astype(np.float32) / 255.0, yt,
        num_classes=100 if label_type == "fine" else 20,
        info=info,
    )


def _read_svhn(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import loadmat

    try:
        m = loadmat(str(path))
    except (OSError, ValueError, NotImplementedError) as exc:
        raise InputFileError(
            f"{path} is not a MATLAB v5 .mat file with keys X and y ({exc}); use the SVHN "
            f"'cropped digits' format 2 files."
        ) from None
    if "X" not in m or "y" not in m:
        raise InputFileError(f"{path} lacks the entries X (32, 32, 3, n) and y (n, 1) of SVHN.")
    x = np.asarray(m["X"])
    y = np.asarray(m["y"]).reshape(-1).astype(np.int64)
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != y.shape[0]:
        raise InputFileError(
            f"{path}: X must have shape (32, 32, 3, n) with n labels; got {x.shape} and {y.shape}."
        )
    y = np.where(y == 10, 0, y)  # SVHN stores digit 0 as label 10
    return np.transpose(x, (3, 2, 0, 1)).astype(np.float32) / 255.0, y


def load_svhn(root: str | os.PathLike[str]) -> Dataset:
    """SVHN (cropped digits) from ``train_32x32.mat`` and ``test_32x32.mat`` under ``root``.

    Label 10 (the file's code for digit 0) becomes 0; images become (n, 3, 32, 32) in [0, 1].

    Raises
    ------
    InputFileError
        If a file is missing (the message names the expected path) or malformed.
    """
    r = Path(root)
    paths = {}
    for split in ("train", "test"):
        name = f"{split}_32x32.mat"
        cand = [r / name, r / "svhn" / name, r / "SVHN" / name]
        found = next((c for c in cand if c.is_file()), None)
        if found is None:
            raise InputFileError(f"missing SVHN .mat file: expected {cand[0]} (MATLAB format with X and y).")
        paths[split] = found
    x, y = _read_svhn(paths["train"])
    xt, yt = _read_svhn(paths["test"])
    return make_dataset_from_arrays(
        "svhn", x, y, xt, yt, num_classes=10, info={"files": {k: str(v) for k, v in paths.items()}}
    )

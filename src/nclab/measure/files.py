"""Feature files: reading (memory-mapped where the format allows), writing, and exact multi-file merge.

A feature file holds ``features`` (n, d) and ``labels`` (n,), and optionally ``weights`` (C, d),
``bias`` (C,), ``test_features``, ``test_labels``, ``true_labels`` and ``ood_features``. Formats:

* ``.safetensors``: parsed from its header and memory-mapped tensor by tensor (float16, bfloat16,
  float32, float64, integer labels);
* ``.npz``: members stored without compression (``np.savez``) are memory-mapped in place inside
  the archive; compressed members (``np.savez_compressed``) are read once, without a further copy;
* ``.pt`` / ``.pth``: ``torch.load(weights_only=True, mmap=True)``; a dict of tensors.

Nothing is unpickled: ``np.load(allow_pickle=False)`` and ``torch.load(weights_only=True)`` refuse
object arrays and arbitrary pickles, and ``.safetensors`` holds no code by construction. A path that
is not a regular file (a directory, a FIFO, a device) is refused before it is opened, so
``nclab measure`` cannot block on a pipe.

Several files (shards written by several workers) are merged exactly by :func:`measure_files`:
every shard's float64 class moments are merged with :meth:`~nclab.metrics.ClassStats.merge`
(Chan et al.'s parallel-variance formula), and the statistics that need the final class means
come from a second pass over the memory-mapped shards.
"""

from __future__ import annotations

import json
import os
import stat
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from nclab.errors import InputFileError, ShapeError

__all__ = ["FEATURE_KEYS", "REQUIRED_KEYS", "load_features", "save_features", "measure_files"]

REQUIRED_KEYS = ("features", "labels")
FEATURE_KEYS = REQUIRED_KEYS + ("weights", "bias", "test_features", "test_labels", "true_labels", "ood_features")
_FORMATS = ".npz, .pt/.pth or .safetensors"

# safetensors dtype codes -> (numpy dtype used to map the bytes, torch dtype of the tensor)
_ST_DTYPES = {
    "F64": (np.float64, torch.float64), "F32": (np.float32, torch.float32), "F16": (np.float16, torch.float16),
    "BF16": (np.uint16, torch.bfloat16), "I64": (np.int64, torch.int64), "I32": (np.int32, torch.int32),
    "I16": (np.int16, torch.int16), "I8": (np.int8, torch.int8), "U8": (np.uint8, torch.uint8),
    "BOOL": (np.bool_, torch.bool),
}


def _check_regular(p: Path) -> None:
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise InputFileError(f"no such file: {p}; pass a {_FORMATS} file holding 'features' and 'labels'.") from None
    except OSError as exc:
        raise InputFileError(f"cannot open {p} ({exc.strerror}); pass a readable {_FORMATS} file.") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputFileError(f"{p} is a directory; pass a {_FORMATS} file.")
    if not stat.S_ISREG(st.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) else "a device"
        raise InputFileError(f"{p} is {kind}, not a regular file; write the features to a {_FORMATS} file first.")


def _as_tensor(a: np.ndarray) -> torch.Tensor:
    """ndarray -> tensor sharing its memory (a byte-swapped or unsupported array is converted once)."""
    if a.dtype.hasobject:
        raise InputFileError("object arrays are not accepted (they would need pickle)")
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    return torch.from_numpy(a)


def _npz_member(p: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """One .npy member of an .npz: memory-mapped when stored uncompressed, else read once."""
    if info.compress_type == zipfile.ZIP_STORED:
        with open(p, "rb") as fh:
            fh.seek(info.header_offset)
            local = fh.read(30)
            if local[:4] != b"PK\x03\x04":
                raise InputFileError("bad local zip header")
            name_len, extra_len = int.from_bytes(local[26:28], "little"), int.from_bytes(local[28:30], "little")
            start = info.header_offset + 30 + name_len + extra_len
            fh.seek(start)
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            offset = fh.tell()
        if dtype.hasobject:
            raise InputFileError("object arrays are not accepted (they would need pickle)")
        if int(np.prod(shape)) == 0:
            return np.zeros(shape, dtype)
        return np.memmap(p, dtype=dtype, mode="c", offset=offset, shape=shape, order="F" if fortran else "C")
    with zf.open(info) as fh:
        return np.lib.format.read_array(fh, allow_pickle=False)


def _load_npz(p: Path) -> dict[str, torch.Tensor]:
    out = {}
    with zipfile.ZipFile(p) as zf:
        for info in zf.infolist():
            if info.filename.endswith(".npy"):
                out[info.filename[:-4]] = _as_tensor(_npz_member(p, zf, info))
    return out


def _load_safetensors(p: Path) -> dict[str, torch.Tensor]:
    with open(p, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        if n <= 0 or n > os.path.getsize(p) - 8:
            raise InputFileError("bad safetensors header length")
        header = json.loads(fh.read(n))
    base = 8 + n
    out = {}
    for key, spec in header.items():
        if key == "__metadata__":
            continue
        if spec["dtype"] not in _ST_DTYPES:
            raise InputFileError(f"tensor {key!r} has unsupported dtype {spec['dtype']}")
        np_dt, t_dt = _ST_DTYPES[spec["dtype"]]
        start, end = spec["data_offsets"]
        shape = tuple(spec["shape"])
        if end - start != int(np.prod(shape)) * np.dtype(np_dt).itemsize:
            raise InputFileError(f"tensor {key!r} has inconsistent offsets")
        if end == start:
            arr = np.zeros(shape, np_dt)
        else:
            arr = np.memmap(p, dtype=np_dt, mode="c", offset=base + start, shape=shape)
        t = torch.from_numpy(arr)
        out[key] = t.view(torch.bfloat16) if t_dt is torch.bfloat16 else t
    return out


def load_features(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a feature file into a dict of CPU tensors with the keys of :data:`FEATURE_KEYS` it holds.

    Each array is read once; ``.safetensors``, uncompressed ``.npz`` and ``.pt`` files are
    memory-mapped (the tensors page in from the file as they are used).

    Raises
    ------
    InputFileError
        Missing file, not a regular file, unknown extension, unreadable content, pickled objects,
        or no ``features`` / ``labels`` entry.
    """
    p = Path(path)
    _check_regular(p)
    suffix = p.suffix.lower()
    try:
        if suffix == ".npz":
            raw = _load_npz(p)
        elif suffix in (".pt", ".pth"):
            obj = torch.load(p, map_location="cpu", weights_only=True, mmap=True)
            if not isinstance(obj, dict):
                raise InputFileError(f"{p} holds a {type(obj).__name__}, not a dict of tensors; save a dict "
                                     "with 'features' and 'labels'.")
            raw = {k: v if isinstance(v, torch.Tensor) else torch.as_tensor(v) for k, v in obj.items()}
        elif suffix == ".safetensors":
            raw = _load_safetensors(p)
        else:
            raise InputFileError(f"{p} has an unknown extension '{p.suffix}'; use {_FORMATS}.")
    except InputFileError as exc:
        if str(exc).startswith(str(p)):
            raise
        raise InputFileError(f"could not read {p} as {suffix} ({exc}); is it a valid {suffix} file?") from None
    except Exception as exc:  # corrupt archive, pickle refused, truncated file, ...
        first = " ".join(str(exc).split())[:200]
        raise InputFileError(f"could not read {p} as {suffix} ({type(exc).__name__}: {first}); "
                             f"is it a valid {suffix} file?") from None
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        raise InputFileError(
            f"{p} has no {', '.join(repr(k) for k in missing)} entry; it must hold 'features' (n, d) and "
            f"'labels' (n,). Found: {sorted(raw) or 'nothing'}."
        )
    return {k: raw[k] for k in FEATURE_KEYS if k in raw}


def save_features(path: str | os.PathLike, **arrays) -> Path:
    """Write arrays (tensors or ndarrays) to ``.npz``, ``.pt`` or ``.safetensors`` by extension."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: torch.as_tensor(v).contiguous() for k, v in arrays.items() if v is not None}
    suffix = p.suffix.lower()
    if suffix == ".npz":
        np.savez(p, **{k: v.numpy() for k, v in tensors.items()})
    elif suffix in (".pt", ".pth"):
        torch.save(tensors, p)
    elif suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(tensors, str(p))
    else:
        raise InputFileError(f"cannot write '{p.suffix}'; use {_FORMATS}.")
    return p


def _same(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.shape == b.shape and bool(torch.equal(a.to(torch.float64), b.to(torch.float64)))


def measure_files(paths: Sequence[str | os.PathLike], *, num_classes: int | None = None,
                  classes: str = "all") -> dict[str, Any]:
    """Every collapse metric of one feature file, or of several shards merged exactly.

    Parameters
    ----------
    paths : sequence of path
        One file, or shards of one feature set (same dimension; the classifier, when given, equal in
        every shard that holds it).
    num_classes : int, optional
        Default: the classifier's row count, else the largest label over all shards + 1.
    classes : {"all", "present"}, default="all"
        ``"present"``: metrics over the classes that have samples (see :func:`nclab.measure.measure`).

    Returns
    -------
    dict
        The keys of :func:`~nclab.metrics.collapse_metrics`, plus ``num_samples`` and, with
        ``classes="present"``, ``num_classes_present``.
    """
    from nclab.measure._compute import metrics_of_features

    if not paths:
        raise InputFileError(f"pass at least one {_FORMATS} feature file.")
    shards = [load_features(p) for p in paths]
    first = shards[0]
    d = first["features"].shape[-1] if first["features"].dim() == 2 else None
    W = b = None
    for p, s in zip(paths, shards):
        f = s["features"]
        if f.dim() != 2 or (d is not None and f.shape[1] != d):
            raise ShapeError(f"{p}: features must have shape (n, {d}) like {paths[0]}; got {tuple(f.shape)}.")
        for key, cur in (("weights", W), ("bias", b)):
            if key in s:
                if cur is not None and not _same(cur, s[key]):
                    raise ShapeError(f"{p}: its {key!r} differ from an earlier shard's; shards of one "
                                     "measurement must share the classifier.")
        W = s.get("weights", W)
        b = s.get("bias", b)

    def cat(key):
        parts = [s[key] for s in shards if key in s]
        if not parts:
            return None
        if key in ("true_labels",) and len(parts) != len(shards):
            raise ShapeError(f"'{key}' is in some shards but not in all; write it in every shard or none.")
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    return metrics_of_features(
        [s["features"] for s in shards], [s["labels"] for s in shards], weights=W, bias=b,
        num_classes=num_classes, classes=classes, test_features=cat("test_features"),
        test_labels=cat("test_labels"), true_labels=cat("true_labels"), ood_features=cat("ood_features"),
    )

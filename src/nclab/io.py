"""Reading feature files for ``nclab measure``: ``.npz``, ``.pt`` / ``.pth`` and ``.safetensors``.

A file holds ``features`` (n, d) and ``labels`` (n,), and optionally ``weights`` (C, d), ``bias`` (C,),
``test_features``, ``test_labels``, ``true_labels`` and ``ood_features``. Features may be float16,
bfloat16 (``.pt`` / ``.safetensors``), float32 or float64.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from nclab.errors import InputFileError

__all__ = ["FEATURE_KEYS", "REQUIRED_KEYS", "load_features", "save_features"]

REQUIRED_KEYS = ("features", "labels")
FEATURE_KEYS = REQUIRED_KEYS + ("weights", "bias", "test_features", "test_labels", "true_labels", "ood_features")
_FORMATS = ".npz, .pt/.pth or .safetensors"


def load_features(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a feature file into a dict of tensors with the keys of :data:`FEATURE_KEYS` it holds."""
    p = Path(path)
    if not p.exists():
        raise InputFileError(f"no such file: {p}; pass a {_FORMATS} file holding 'features' and 'labels'.")
    if p.is_dir():
        raise InputFileError(f"{p} is a directory; pass a {_FORMATS} file.")
    suffix = p.suffix.lower()
    try:
        if suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                raw = {k: torch.from_numpy(np.array(z[k])) for k in z.files}
        elif suffix in (".pt", ".pth"):
            obj = torch.load(p, map_location="cpu", weights_only=True)
            if not isinstance(obj, dict):
                raise InputFileError(f"{p} holds a {type(obj).__name__}, not a dict of tensors; save a dict "
                                     "with 'features' and 'labels'.")
            raw = {k: torch.as_tensor(v) for k, v in obj.items()}
        elif suffix == ".safetensors":
            from safetensors.torch import load_file

            raw = load_file(str(p))
        else:
            raise InputFileError(f"{p} has an unknown extension '{p.suffix}'; use {_FORMATS}.")
    except InputFileError:
        raise
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

"""The MNIST-1D disk cache is validated (dtypes, shapes, label range, SHA-256) and regenerated when
truncated, damaged or wrong; a valid cache is used as is (not regenerated)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nclab.data.mnist1d as m1


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """A cache directory and a cleared in-process memo; returns (cache_dir, reference dataset, path)."""
    monkeypatch.setattr(m1, "_MEMO", {})
    cache = tmp_path / "cache"
    ref = m1.make_mnist1d(num_samples=60, classes=3, cache_dir=cache)
    (path,) = cache.glob("mnist1d_*.npz")
    monkeypatch.setattr(m1, "_MEMO", {})
    return cache, ref, path


def _load(cache, monkeypatch):
    monkeypatch.setattr(m1, "_MEMO", {})
    return m1.make_mnist1d(num_samples=60, classes=3, cache_dir=cache)


def _same(a, b):
    return (torch.equal(a.train.x, b.train.x) and torch.equal(a.train.labels, b.train.labels)
            and torch.equal(a.test.x, b.test.x) and torch.equal(a.test.labels, b.test.labels))


def _arrays(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: np.array(z[k]) for k in z.files}


def test_valid_cache_is_used_without_regenerating(fresh, monkeypatch):
    cache, ref, path = fresh
    monkeypatch.setattr(m1, "_generate", lambda *a, **k: pytest.fail("regenerated a valid cache"))
    assert _same(_load(cache, monkeypatch), ref)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "wrong_shape", "wrong_dtype", "label_range",
                                    "edited_value", "missing_checksum"])
def test_damaged_cache_is_regenerated(fresh, monkeypatch, damage):
    cache, ref, path = fresh
    raw = path.read_bytes()
    a = _arrays(path)
    calls = []
    real = m1._generate
    monkeypatch.setattr(m1, "_generate", lambda *args: calls.append(1) or real(*args))
    if damage == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00" * len(raw))
    else:
        if damage == "wrong_shape":  # consistent file (checksum recomputed) of the wrong shape
            a["x"] = a["x"][:, :-1].copy()
            a["x_test"] = a["x_test"][:, :-1].copy()
        elif damage == "wrong_dtype":
            a["x"] = a["x"].astype(np.float64)
        elif damage == "label_range":
            a["y"] = a["y"].copy()
            a["y"][0] = 7
        elif damage == "edited_value":
            a["x"] = a["x"].copy()
            a["x"][0, 0] += 1.0
        if damage in ("wrong_shape", "wrong_dtype", "label_range"):
            a["sha256"] = m1._checksum(a)  # only the shape/dtype/range checks can catch these
        if damage == "missing_checksum":
            del a["sha256"]
        np.savez(path, **a)
    got = _load(cache, monkeypatch)
    assert calls == [1]
    assert _same(got, ref)
    assert got.train.x.shape == (48, 40)
    # the cache was rewritten whole: the next load uses it as is
    monkeypatch.setattr(m1, "_generate", lambda *args: pytest.fail("rewritten cache not used"))
    assert _same(_load(cache, monkeypatch), ref)


def test_unwritable_cache_dir_is_not_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(m1, "_MEMO", {})
    blocker = tmp_path / "file"
    blocker.write_text("x")
    ds = m1.make_mnist1d(num_samples=40, classes=2, cache_dir=blocker / "sub")
    assert ds.train.x.shape == (32, 40)
    assert list(tmp_path.iterdir()) == [blocker]

"""File readers: tiny files written here in the standard formats, read back and compared."""

from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from nclab.data import load_cifar10, load_dataset, load_fashion_mnist, load_mnist, load_svhn, read_idx
from nclab.errors import InputFileError, SpecError


def _write_idx(path, arr: np.ndarray, *, gz: bool) -> None:
    code = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}[arr.dtype]
    raw = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)


def _mnist_files(root, rng, *, gz: bool, n=7, nt=5):
    x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, size=n).astype(np.uint8)
    xt = rng.integers(0, 256, size=(nt, 28, 28), dtype=np.uint8)
    yt = rng.integers(0, 10, size=nt).astype(np.uint8)
    root.mkdir(parents=True, exist_ok=True)
    _write_idx(root / "train-images-idx3-ubyte", x, gz=gz)
    _write_idx(root / "train-labels-idx1-ubyte", y, gz=gz)
    _write_idx(root / "t10k-images-idx3-ubyte", xt, gz=gz)
    _write_idx(root / "t10k-labels-idx1-ubyte", yt, gz=gz)
    return x, y, xt, yt


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_round_trip(tmp_path, gz):
    x, y, xt, yt = _mnist_files(tmp_path, np.random.default_rng(0), gz=gz)
    ds = load_mnist(tmp_path)
    assert ds.train.x.shape == (7, 1, 28, 28) and ds.test.x.shape == (5, 1, 28, 28)
    torch.testing.assert_close(ds.train.x[:, 0], torch.as_tensor(x, dtype=torch.float32) / 255)
    assert ds.train.labels.tolist() == y.tolist() and ds.test.labels.tolist() == yt.tolist()
    assert torch.equal(ds.train.labels, ds.train.true_labels)
    assert ds.num_classes == 10


def test_fashion_mnist_torchvision_layout(tmp_path):
    x, y, _, _ = _mnist_files(tmp_path / "FashionMNIST" / "raw", np.random.default_rng(1), gz=True)
    ds = load_fashion_mnist(tmp_path)
    assert ds.name == "fashion_mnist"
    assert ds.train.labels.tolist() == y.tolist()


def test_read_idx_int32(tmp_path):
    a = (np.arange(24).reshape(2, 3, 4) - 5).astype(">i4")
    _write_idx(tmp_path / "a.idx", a, gz=False)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx"), a)


def test_missing_and_bad_idx_errors(tmp_path):
    with pytest.raises(InputFileError, match=r"train-images-idx3-ubyte\[\.gz\]") as e:
        load_mnist(tmp_path)
    assert "\n" not in str(e.value) and str(tmp_path) in str(e.value)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(InputFileError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    a = np.zeros((3, 4), dtype=np.uint8)
    _write_idx(tmp_path / "t.idx", a, gz=False)
    (tmp_path / "t.idx").write_bytes((tmp_path / "t.idx").read_bytes()[:-2])
    with pytest.raises(InputFileError, match="truncated"):
        read_idx(tmp_path / "t.idx")


def _cifar_files(base, rng, n=4):
    base.mkdir(parents=True)
    out = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).tolist()
        with open(base / name, "wb") as fh:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": b"x"}, fh, protocol=2)
        out[name] = (data, labels)
    return out


def test_cifar10_pickle_batches(tmp_path):
    files = _cifar_files(tmp_path / "cifar-10-batches-py", np.random.default_rng(2))
    ds = load_cifar10(tmp_path)
    assert ds.train.x.shape == (20, 3, 32, 32) and ds.test.x.shape == (4, 3, 32, 32)
    d3, l3 = files["data_batch_3"]
    # CIFAR rows are 1024 red, 1024 green, 1024 blue values, each 32x32 row-major
    k = 2 * 4 + 1  # second image of batch 3
    assert ds.train.x[k, 1, 5, 7].item() == pytest.approx(d3[1, 1024 + 5 * 32 + 7] / 255)
    assert ds.train.labels[k].item() == l3[1]
    assert ds.test.labels.tolist() == files["test_batch"][1]


def test_cifar10_errors(tmp_path):
    with pytest.raises(InputFileError, match="cifar-10-batches-py/test_batch"):
        load_cifar10(tmp_path)
    base = tmp_path / "cifar-10-batches-py"
    _cifar_files(base, np.random.default_rng(3))
    (base / "data_batch_4").unlink()
    with pytest.raises(InputFileError, match="data_batch_4"):
        load_cifar10(tmp_path)
    # a pickle that would run arbitrary code is refused, not executed
    with open(base / "data_batch_4", "wb") as fh:
        pickle.dump({b"data": __import__("os").getcwd}, fh)
    with pytest.raises(InputFileError, match="refusing"):
        load_cifar10(tmp_path)


def test_svhn_mat(tmp_path):
    from scipy.io import savemat

    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, size=(32, 32, 3, 6), dtype=np.uint8)
    y = np.array([[10], [1], [2], [10], [9], [3]], dtype=np.uint8)
    savemat(tmp_path / "train_32x32.mat", {"X": x, "y": y})
    savemat(tmp_path / "test_32x32.mat", {"X": x[..., :2], "y": y[:2]})
    ds = load_svhn(tmp_path)
    assert ds.train.x.shape == (6, 3, 32, 32)
    assert ds.train.labels.tolist() == [0, 1, 2, 0, 9, 3]
    # X[row, col, channel, sample] -> x[sample, channel, row, col]
    assert ds.train.x[4, 2, 3, 17].item() == pytest.approx(x[3, 17, 2, 4] / 255)


def test_svhn_missing(tmp_path):
    with pytest.raises(InputFileError, match="train_32x32.mat"):
        load_svhn(tmp_path)


def test_load_dataset_file_pipeline(tmp_path):
    rng = np.random.default_rng(5)
    root = tmp_path / "m"
    _mnist_files(root, rng, gz=True, n=60, nt=30)
    ds = load_dataset("mnist", root=root, classes=[3, 1])
    assert ds.num_classes == 2
    assert set(ds.train.labels.tolist()) <= {0, 1}
    x = ds.train.x
    assert abs(x.mean().item()) < 1e-5 and x.std().item() == pytest.approx(1.0, rel=0.05)
    with pytest.raises(SpecError, match="root"):
        load_dataset("cifar10")
    with pytest.raises(SpecError, match="unknown dataset"):
        load_dataset("imagenet")

"""File readers: tiny files written here in the standard formats, read back and compared."""

from __future__ import annotations

import gzip
import os
import pickle
import struct

import numpy as np
import pytest
import torch

from nclab.data import DATASETS, FILE_DATASETS, load_cifar10, load_dataset, load_fashion_mnist, load_mnist, load_svhn, read_idx
from nclab.data.files import load_cifar100
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


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_torchvision_layout(tmp_path, gz):
    """torchvision.datasets.MNIST(root) keeps root/MNIST/raw/*-ubyte (and the .gz it downloaded)."""
    x, y, xt, yt = _mnist_files(tmp_path / "MNIST" / "raw", np.random.default_rng(6), gz=gz)
    for r in (tmp_path, tmp_path / "MNIST"):  # the root torchvision was given, or its MNIST folder
        ds = load_mnist(r)
        assert ds.test.labels.tolist() == yt.tolist()
        torch.testing.assert_close(ds.test.x[:, 0], torch.as_tensor(xt, dtype=torch.float32) / 255)


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


# ----------------------------------------------------------------------------- Python 2 pickles
# The CIFAR "python version" files were written by Python 2's cPickle (protocol 2): str values are
# SHORT_BINSTRING/BINSTRING and the arrays refer to numpy.core.multiarray._reconstruct. These
# helpers write that byte stream opcode by opcode (pickle's documented opcodes), so the reader is
# tested on the format of the real files, not only on what Python 3 writes.
def _py2_str(b: bytes) -> bytes:
    return (b"U" + bytes([len(b)]) + b) if len(b) < 256 else (b"T" + struct.pack("<i", len(b)) + b)


def _py2_int(v: int) -> bytes:
    return b"K" + bytes([v]) if 0 <= v < 256 else b"J" + struct.pack("<i", v)


def _py2_array(a: np.ndarray) -> bytes:
    out = b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n" + _py2_int(0) + b"\x85" + _py2_str(b"b") + b"\x87R"
    out += b"(" + _py2_int(1) + b"(" + b"".join(_py2_int(x) for x in a.shape) + b"t"
    out += b"cnumpy\ndtype\n" + _py2_str(a.dtype.str[1:].encode()) + _py2_int(0) + _py2_int(1) + b"\x87R"
    out += b"(" + _py2_int(3) + _py2_str(b"|") + b"NNN" + _py2_int(-1) + _py2_int(-1) + _py2_int(0) + b"tb"
    return out + b"\x89" + _py2_str(a.tobytes()) + b"tb"


def _py2_pickle(d: dict) -> bytes:
    out = b"\x80\x02}("
    for k, v in d.items():
        out += _py2_str(k.encode())
        if isinstance(v, np.ndarray):
            out += _py2_array(v)
        elif isinstance(v, list):
            out += b"](" + b"".join(_py2_int(x) if isinstance(x, int) else _py2_str(x.encode()) for x in v) + b"e"
        else:
            out += _py2_str(v.encode())
    return out + b"u."


def test_py2_pickle_helper_is_a_valid_pickle():
    a = np.arange(2 * 3072).astype(np.uint8).reshape(2, 3072)
    d = pickle.loads(_py2_pickle({"data": a, "labels": [3, 7], "batch_label": "b"}), encoding="bytes")
    assert d[b"labels"] == [3, 7] and d[b"batch_label"] == b"b"
    np.testing.assert_array_equal(d[b"data"], a)


def test_cifar10_python2_batches_and_meta(tmp_path):
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    rng = np.random.default_rng(7)
    want = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(3, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=3).tolist()
        (base / name).write_bytes(_py2_pickle({"batch_label": name, "labels": labels, "data": data,
                                               "filenames": ["a.png", "b.png", "c.png"]}))
        want[name] = (data, labels)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (base / "batches.meta").write_bytes(_py2_pickle({"label_names": names, "num_vis": "3072"}))
    ds = load_cifar10(tmp_path)
    assert ds.train.labels.tolist() == sum((want[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    np.testing.assert_array_equal((ds.test.x.numpy() * 255).round().astype(np.uint8).reshape(3, 3072),
                                  want["test_batch"][0])
    assert ds.info["class_names"] == names


def _cifar100_files(base, rng, *, n=6, nt=4, py2=True):
    base.mkdir(parents=True)
    out = {}
    for name, k in (("train", n), ("test", nt)):
        d = {"filenames": ["x.png"] * k, "batch_label": name,
             "fine_labels": rng.integers(0, 100, size=k).tolist(),
             "coarse_labels": rng.integers(0, 20, size=k).tolist(),
             "data": rng.integers(0, 256, size=(k, 3072), dtype=np.uint8)}
        if py2:
            (base / name).write_bytes(_py2_pickle(d))
        else:
            with open(base / name, "wb") as fh:
                pickle.dump({key.encode(): v for key, v in d.items()}, fh, protocol=4)
        out[name] = d
    meta = {"fine_label_names": [f"f{i}" for i in range(100)], "coarse_label_names": [f"c{i}" for i in range(20)]}
    (base / "meta").write_bytes(_py2_pickle(meta))
    return out


@pytest.mark.parametrize("py2", [True, False])
def test_cifar100_fine_and_coarse(tmp_path, py2):
    files = _cifar100_files(tmp_path / "cifar-100-python", np.random.default_rng(8), py2=py2)
    fine = load_cifar100(tmp_path)
    assert fine.name == "cifar100" and fine.num_classes == 100
    assert fine.train.x.shape == (6, 3, 32, 32) and fine.test.x.shape == (4, 3, 32, 32)
    assert fine.train.labels.tolist() == files["train"]["fine_labels"]
    assert fine.test.labels.tolist() == files["test"]["fine_labels"]
    d = files["train"]["data"]
    assert fine.train.x[4, 2, 31, 0].item() == pytest.approx(d[4, 2048 + 31 * 32] / 255)  # blue plane, last row
    assert fine.info["class_names"][:2] == ["f0", "f1"]
    coarse = load_cifar100(tmp_path / "cifar-100-python", label_type="coarse")
    assert coarse.name == "cifar100_coarse" and coarse.num_classes == 20
    assert coarse.train.labels.tolist() == files["train"]["coarse_labels"]
    assert coarse.info["class_names"] == [f"c{i}" for i in range(20)]
    torch.testing.assert_close(coarse.train.x, fine.train.x)


def test_cifar100_errors(tmp_path):
    with pytest.raises(InputFileError, match="cifar-100-python/test") as e:
        load_cifar100(tmp_path)
    assert "\n" not in str(e.value)
    with pytest.raises(SpecError, match="label_type"):
        load_cifar100(tmp_path, label_type="super")
    base = tmp_path / "cifar-100-python"
    _cifar100_files(base, np.random.default_rng(9))
    (base / "train").unlink()
    with pytest.raises(InputFileError, match="cifar-100-python/train"):
        load_cifar100(tmp_path)
    (base / "train").write_bytes(_py2_pickle({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1]}))
    with pytest.raises(InputFileError, match="fine_labels"):
        load_cifar100(tmp_path)
    (base / "train").write_bytes(_py2_pickle({"data": np.zeros((2, 3072), np.int32), "fine_labels": [0, 1]}))
    with pytest.raises(InputFileError, match="uint8"):
        load_cifar100(tmp_path)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10", "cifar100", "cifar100_coarse", "svhn"])
def test_every_file_dataset_needs_a_root_and_names_its_files(tmp_path, name):
    assert name in FILE_DATASETS and set(FILE_DATASETS) <= set(DATASETS)
    with pytest.raises(SpecError, match="root"):
        load_dataset(name)
    with pytest.raises(InputFileError, match=str(tmp_path)) as e:  # an empty directory: the expected path
        load_dataset(name, root=tmp_path)
    assert "\n" not in str(e.value)


def test_load_dataset_cifar100(tmp_path):
    _cifar100_files(tmp_path / "cifar-100-python", np.random.default_rng(10), n=12)
    assert {"cifar100", "cifar100_coarse"} <= set(DATASETS)
    ds = load_dataset("cifar100", root=tmp_path)
    assert ds.num_classes == 100 and ds.info["standardised"]
    assert load_dataset("cifar100_coarse", root=tmp_path).num_classes == 20
    assert load_dataset("cifar-100", root=tmp_path).num_classes == 100


# ----------------------------------------------------------------------------- pickle payloads
class _MakeDir:
    """A pickle payload: unpickling it calls os.mkdir(marker) (code execution)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.mark.parametrize("where", ["data", "labels", "top"])
def test_cifar_payload_does_not_execute(tmp_path, where):
    marker = tmp_path / "pwned"
    payload = _MakeDir(marker)
    # control: a plain unpickler does run it, so the payload is live
    pickle.loads(pickle.dumps(payload))
    assert marker.is_dir()
    marker.rmdir()
    base = tmp_path / "cifar-100-python"
    _cifar100_files(base, np.random.default_rng(11))
    good = {b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": [0, 1], b"coarse_labels": [0, 1]}
    bad = payload if where == "top" else {**good, where.encode() if where != "labels" else b"fine_labels": payload}
    for proto in (2, 4):
        (base / "test").write_bytes(pickle.dumps(bad, protocol=proto))
        with pytest.raises(InputFileError, match=r"refusing to load the global (posix|nt)\.mkdir") as e:
            load_cifar100(tmp_path)
        assert "\n" not in str(e.value) and "cifar-100-python/test" in str(e.value)
        assert not marker.exists()


@pytest.mark.parametrize("glob", [("builtins", "eval"), ("builtins", "getattr"), ("os", "system"),
                                  ("numpy", "load"), ("numpy.core.multiarray", "scalar"), ("subprocess", "Popen")])
def test_cifar_unpickler_refuses_other_globals(tmp_path, glob):
    base = tmp_path / "cifar-10-batches-py"
    _cifar_files(base, np.random.default_rng(12))
    module, name = glob
    raw = b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n."  # just the GLOBAL opcode
    (base / "test_batch").write_bytes(raw)
    with pytest.raises(InputFileError, match=f"refusing to load the global {module}.{name}"):
        load_cifar10(tmp_path)


def test_codecs_encode_only_for_latin1_text(tmp_path):
    from nclab.data.files import _CifarUnpickler

    ok = pickle.dumps({b"k": b"\x00\xff"}, protocol=2)  # Python 3 writes bytes via _codecs.encode here
    assert b"_codecs" in ok
    assert _CifarUnpickler(__import__("io").BytesIO(ok), encoding="bytes").load() == {b"k": b"\x00\xff"}
    evil = b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x06\x00\x00\x00rot_13\x86R."
    assert pickle.loads(evil) == "nop"  # the codec would run under a plain unpickler
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        _CifarUnpickler(__import__("io").BytesIO(evil), encoding="bytes").load()

"""`nclab measure FILE`: formats, JSON keys, and one-line errors with exit status 2."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from nclab.cli import app
from nclab.errors import InputFileError
from nclab.measure.files import load_features, save_features
from nclab.metrics import collapse_metrics

runner = CliRunner()


def _arrays(seed=0, C=3, d=6, n=30):
    g = np.random.default_rng(seed)
    y = np.arange(n) % C
    h = g.normal(size=(n, d)) + 3 * np.eye(C, d)[y]
    return dict(
        features=h.astype(np.float32), labels=y, weights=g.normal(size=(C, d)), bias=g.normal(size=C),
        test_features=(g.normal(size=(12, d)) + 3 * np.eye(C, d)[np.arange(12) % C]).astype(np.float32),
        test_labels=np.arange(12) % C, true_labels=np.where(np.arange(n) % 7 == 0, (y + 1) % C, y),
        ood_features=g.normal(size=(5, d)).astype(np.float32),
    )


@pytest.mark.parametrize("ext", [".npz", ".pt", ".safetensors"])
def test_json_matches_library(tmp_path, ext):
    arr = _arrays()
    path = save_features(tmp_path / f"f{ext}", **arr)
    res = runner.invoke(app, ["measure", str(path), "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    want = collapse_metrics(
        arr["features"], arr["labels"], weights=arr["weights"], bias=arr["bias"],
        test_features=arr["test_features"], test_labels=arr["test_labels"],
        true_labels=arr["true_labels"], ood_features=arr["ood_features"],
    )
    assert set(got) == set(want) | {"num_samples"} and got["num_samples"] == 30
    for k in ("nc1", "cdnv", "nc2_equinorm", "nc2_equiangular", "nc2_etf", "nc2_of", "nc3_duality", "nc3_etf",
              "nc4_ncc_mismatch", "cosine_intra_min", "cosine_inter_max", "margin_min", "memorization",
              "dilation", "nc1_quotient", "gnc2_dist_var", "gnc2_log_var", "unc3_var", "nc5_ood"):
        assert math.isclose(got[k], want[k], rel_tol=1e-12), k


def test_bfloat16_and_half_features(tmp_path):
    arr = _arrays()
    for dt in (torch.bfloat16, torch.float16):
        p = save_features(tmp_path / "h.safetensors", features=torch.tensor(arr["features"]).to(dt), labels=torch.tensor(arr["labels"]))
        res = runner.invoke(app, ["measure", str(p), "--json"])
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["nc1"] > 0


def test_table_output(tmp_path):
    p = save_features(tmp_path / "f.npz", **_arrays())
    res = runner.invoke(app, ["measure", str(p)])
    assert res.exit_code == 0 and "nc1" in res.stdout and "memorization" in res.stdout


def _bad(tmp_path):
    a = _arrays()
    yield "missing.npz", None, "no such file"
    yield "nolabels.npz", dict(features=a["features"]), "'labels'"
    nanf = a["features"].copy(); nanf[0, 0] = np.nan
    yield "nan.npz", dict(features=nanf, labels=a["labels"]), "NaN"
    yield "range.npz", dict(features=a["features"], labels=a["labels"] * 5), "no sample"
    yield "neg.npz", dict(features=a["features"], labels=a["labels"] - 1), ">= 0"
    yield "one.npz", dict(features=a["features"], labels=np.zeros(30, int)), "at least 2 classes"
    yield "shape.npz", dict(features=a["features"], labels=a["labels"][:10]), "must match"
    yield "w.npz", dict(features=a["features"], labels=a["labels"], weights=np.ones((3, 2))), "weights must have shape"


def test_bad_inputs_one_line_exit_2(tmp_path):
    for name, arrays, msg in _bad(tmp_path):
        p = tmp_path / name
        if arrays is not None:
            save_features(p, **arrays)
        res = runner.invoke(app, ["measure", str(p)])
        assert res.exit_code == 2, (name, res.output)
        lines = [ln for ln in res.output.strip().splitlines() if ln]
        assert len(lines) == 1 and lines[0].startswith("error:") and msg in lines[0], (name, res.output)


def test_unreadable_and_unknown_files(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    (tmp_path / "x.csv").write_text("1,2")
    for f, msg in (("junk.npz", "could not read"), ("x.csv", "unknown extension")):
        res = runner.invoke(app, ["measure", str(tmp_path / f)])
        assert res.exit_code == 2 and msg in res.output, res.output


def test_help_is_fast_and_imports_no_torch():
    code = "import sys; from nclab.cli import app; assert 'torch' not in sys.modules, 'torch imported at --help'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_shards_merge_exactly(tmp_path):
    arr = _arrays(n=60)
    cut = [0, 7, 31, 60]  # uneven shards; the classifier and the test set in the first shard only
    paths = []
    for i, (a, b) in enumerate(zip(cut, cut[1:])):
        part = dict(features=arr["features"][a:b], labels=arr["labels"][a:b], true_labels=arr["true_labels"][a:b])
        if i == 0:
            part.update(weights=arr["weights"], bias=arr["bias"], test_features=arr["test_features"],
                        test_labels=arr["test_labels"])
        paths.append(str(save_features(tmp_path / f"s{i}.safetensors", **part)))
    res = runner.invoke(app, ["measure", *paths, "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    want = collapse_metrics(arr["features"], arr["labels"], weights=arr["weights"], bias=arr["bias"],
                            test_features=arr["test_features"], test_labels=arr["test_labels"],
                            true_labels=arr["true_labels"])
    assert got["num_samples"] == 60
    for k, v in want.items():
        assert math.isclose(got[k], v, rel_tol=1e-9, abs_tol=1e-12), k
    alone = save_features(tmp_path / "alone.npz", features=arr["features"][7:31], labels=arr["labels"][7:31])
    one = json.loads(runner.invoke(app, ["measure", str(alone), "--json"]).stdout)
    assert one["nc1"] != got["nc1"]  # a shard alone is not the merge


def test_shards_must_share_the_classifier(tmp_path):
    arr = _arrays()
    a = save_features(tmp_path / "a.npz", features=arr["features"], labels=arr["labels"], weights=arr["weights"])
    b = save_features(tmp_path / "b.npz", features=arr["features"], labels=arr["labels"], weights=arr["weights"] + 1)
    res = runner.invoke(app, ["measure", str(a), str(b)])
    assert res.exit_code == 2 and "share the classifier" in res.output
    c = save_features(tmp_path / "c.npz", features=arr["features"][:, :4], labels=arr["labels"])
    res = runner.invoke(app, ["measure", str(a), str(c)])
    assert res.exit_code == 2 and "features must have shape" in res.output


def test_present_classes_option(tmp_path):
    arr = _arrays()
    p = save_features(tmp_path / "f.npz", features=arr["features"], labels=arr["labels"] * 2)
    assert runner.invoke(app, ["measure", str(p)]).exit_code == 2  # strict by default: classes 1, 3 empty
    res = runner.invoke(app, ["measure", str(p), "--classes", "present", "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    want = collapse_metrics(arr["features"], arr["labels"])
    assert got["num_classes_present"] == 3 and got["num_classes"] == 5
    assert math.isclose(got["nc1"], want["nc1"], rel_tol=1e-12)


def test_fifo_refused(tmp_path):
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    res = runner.invoke(app, ["measure", str(fifo)])  # must not block on the pipe
    assert res.exit_code == 2 and "not a regular file" in res.output and len(res.output.strip().splitlines()) == 1


def test_pickles_refused(tmp_path):
    marker = tmp_path / "ran"
    class Boom:
        def __reduce__(self):
            return (open, (str(marker), "w"))
    torch.save({"features": torch.zeros(4, 2), "labels": torch.arange(4) % 2, "x": Boom()}, tmp_path / "p.pt")
    np.savez(tmp_path / "o.npz", features=np.zeros((4, 2)), labels=np.array([0, 1, "a", None], dtype=object))
    for name in ("p.pt", "o.npz"):
        with pytest.raises(InputFileError, match="could not read"):
            load_features(tmp_path / name)
    assert not marker.exists()


def test_memory_mapped_and_compressed(tmp_path):
    from nclab.measure import files

    arr = _arrays()
    for ext in (".npz", ".safetensors", ".pt"):
        p = save_features(tmp_path / f"m{ext}", **arr)
        got = load_features(p)
        for k in ("features", "labels", "weights"):
            np.testing.assert_array_equal(got[k].numpy(), arr[k])
    np.savez_compressed(tmp_path / "c.npz", **arr)
    got = load_features(tmp_path / "c.npz")
    np.testing.assert_array_equal(got["features"].numpy(), arr["features"])
    import zipfile
    for name, mapped in (("m.npz", True), ("c.npz", False)):
        with zipfile.ZipFile(tmp_path / name) as zf:
            member = files._npz_member(tmp_path / name, zf, zf.getinfo("features.npy"))
        assert isinstance(member, np.memmap) is mapped
    bf = torch.randn(5, 3).to(torch.bfloat16)
    p = save_features(tmp_path / "b.safetensors", features=bf, labels=torch.arange(5) % 2)
    assert torch.equal(load_features(p)["features"], bf)

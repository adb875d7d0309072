"""The lean install: core commands work without any extra, and a missing extra is named in one line.

Missing modules are simulated: a meta-path finder refuses to import them (and their entries are
taken out of ``sys.modules`` for the test), as if they were not installed.
"""

from __future__ import annotations

import importlib.abc
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from nclab._extras import EXTRAS, extra_for, missing_extra_message, require, require_extra
from nclab.errors import MissingExtraError, NCLabError

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
# the distribution that brings each module of EXTRAS
DISTRIBUTIONS = {"mlflow": "mlflow-skinny"}


class _Refuse(importlib.abc.MetaPathFinder):
    def __init__(self, names):
        self.names = set(names)

    def find_spec(self, name, path, target=None):
        if name.split(".", 1)[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


@pytest.fixture
def block(monkeypatch):
    """``block("ray", "matplotlib")``: those packages behave as not installed until the test ends."""

    def _block(*names):
        for key in list(sys.modules):
            if key.split(".", 1)[0] in names:
                monkeypatch.delitem(sys.modules, key)
        monkeypatch.setattr(sys, "meta_path", [_Refuse(names), *sys.meta_path])

    return _block


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _names(requirements) -> set[str]:
    import re

    return {re.split(r"[\[<>=!~; ]", r, 1)[0].lower() for r in requirements}


def test_every_optional_module_is_in_its_extra_and_not_in_the_core():
    project = _pyproject()
    extras = project["optional-dependencies"]
    core = _names(project["dependencies"])
    for module, extra in EXTRAS.items():
        dist = DISTRIBUTIONS.get(module, module)
        assert dist in _names(extras[extra]), f"{module} -> {extra}: {dist} missing from [{extra}]"
        assert dist not in core, f"{dist} is optional ({extra}) but listed in the core dependencies"
    assert "ray" not in core and "matplotlib" not in core and "mnist1d" not in core
    # 'all' is every other extra
    (all_req,) = extras["all"]
    listed = set(all_req.split("[", 1)[1].rstrip("]").split(","))
    assert listed == set(extras) - {"all"}


def test_extra_for_and_require():
    assert extra_for("ray.tune.search.optuna") == "lab"
    assert extra_for("mlflow") == "track"
    assert extra_for("numpy") is None and extra_for(None) is None
    assert require("numpy").__name__ == "numpy"
    with pytest.raises(ValueError, match="unknown extra"):
        require_extra("nope")


def test_require_names_the_extra(block):
    block("optuna")
    with pytest.raises(MissingExtraError, match=r'pip install "nclab\[lab\]"') as info:
        require("optuna.samplers", what="the search")
    assert isinstance(info.value, NCLabError) and isinstance(info.value, ModuleNotFoundError)
    assert "the search needs the optional dependency 'optuna'" in str(info.value)
    with pytest.raises(MissingExtraError, match="'optuna'"):
        require_extra("lab")
    block("tensorboard")
    with pytest.raises(MissingExtraError, match=r"nclab\[track\]"):
        require_extra("track")


def test_missing_extra_message_only_for_known_extras():
    assert missing_extra_message(ModuleNotFoundError("x", name="ray.tune")) == (
        "this needs the optional dependency 'ray', which is not installed; "
        'pip install "nclab[lab]" brings it.')
    assert missing_extra_message(ModuleNotFoundError("x", name="numpy")) is None
    assert missing_extra_message(ValueError("x")) is None


def test_cli_boundary_turns_a_missing_extra_into_one_line(capsys):
    from nclab.cli.app import user_errors

    with pytest.raises(typer.Exit) as info:
        with user_errors():
            raise ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib")
    assert info.value.exit_code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and 'pip install "nclab[lab]"' in err
    with pytest.raises(ModuleNotFoundError):  # not an extra: a real bug, not hidden
        with user_errors():
            raise ModuleNotFoundError("No module named 'nclab.nothing'", name="nclab.nothing")


@pytest.mark.parametrize("args, blocked, what", [
    (["md", "sweep", "--num", "1"], ("matplotlib",), "nclab md sweep"),
    (["verify", "--quick", "--plots", "figs"], ("matplotlib",), "nclab verify --plots"),
    (["run", "md-large-scale", "--preset", "tiny"], ("ray",), "running experiments"),
    (["reproduce", "--quick"], ("mnist1d",), "nclab reproduce"),
    (["report"], ("matplotlib",), "nclab report"),
])
def test_commands_name_their_missing_extra(block, tmp_path, monkeypatch, args, blocked, what):
    from nclab.cli import app

    monkeypatch.chdir(tmp_path)
    block(*blocked)
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1, r.output
    assert lines[0].startswith("error: ") and what in lines[0]
    assert f"'{blocked[0]}'" in lines[0] and 'pip install "nclab[lab]"' in lines[0]
    assert not (tmp_path / "figs").exists() and not (tmp_path / "md_sweep.png").exists()


_CORE_ONLY = """
import functools, importlib.abc, json, sys
BLOCKED = {blocked!r}

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".", 1)[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)

sys.meta_path.insert(0, Refuse())
from typer.testing import CliRunner
import nclab.demo
from nclab.cli import app

# the real demo at a smaller size (the CLI calls make_demo(out) with the defaults)
nclab.demo.make_demo = functools.partial(nclab.demo.make_demo, num_samples=600, epochs=4)
runner = CliRunner()
out = {{}}
for name, args in {commands!r}.items():
    r = runner.invoke(app, args)
    out[name] = [r.exit_code, r.stdout, repr(r.exception) if r.exit_code else ""]
out["loaded"] = sorted(m for m in sys.modules if m.split(".", 1)[0] in BLOCKED)
print("RESULT" + json.dumps(out))
"""


def test_core_commands_run_without_any_extra(tmp_path):
    """``pip install nclab`` (no extras): measure --demo, measure FILE, ufm, md in a fresh process."""
    blocked = sorted(set(EXTRAS) - {"pydantic"})  # typer itself needs pydantic
    demo = str(tmp_path / "demo.npz")
    commands = {
        "demo": ["measure", "--demo", "--json", "--out", demo],
        "measure": ["measure", demo, "--json"],
        "ufm": ["ufm", "solve", "--model", "plain", "--loss", "mse", "--classes", "3",
                "--per-class", "2", "--dim", "4", "--json"],
        "md": ["md", "--lambda-w", "1e-3", "--lambda-h", "1e-3", "--alpha", "0.1", "--eta", "0.01",
               "--cmd", "1", "--json"],
    }
    script = textwrap.dedent(_CORE_ONLY).format(blocked=blocked, commands=commands)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("RESULT", 1)[1])
    for name in commands:
        code, stdout, exc = out[name]
        assert code == 0, f"{name}: {exc}\n{stdout[-2000:]}"
    assert out["loaded"] == []
    m = json.loads(out["measure"][1])
    assert m == json.loads(out["demo"][1])
    assert 0.0 <= m["nc1"] < float("inf") and 0.0 <= m["accuracy"] <= 1.0
    u = json.loads(out["ufm"][1])
    assert u["converged"] and u["objective"] == pytest.approx(u["predicted"]["objective"], rel=1e-8)


def test_demo_data_are_balanced_deterministic_and_not_linearly_separable():
    import torch

    from nclab.demo import make_mixture

    x, y, xt, yt = make_mixture(1000, seed=3)
    assert x.shape == (1000, 40) and xt.shape == (1000, 40) and x.dtype == torch.float32
    assert torch.bincount(y).tolist() == [100] * 10 and torch.bincount(yt).tolist() == [100] * 10
    x2, y2, _, _ = make_mixture(1000, seed=3)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(x, make_mixture(1000, seed=4)[0])
    # least-squares linear classifier (one-hot targets): clearly below perfect on fresh data
    a = torch.cat([x, torch.ones(len(x), 1)], 1).double()
    coef = torch.linalg.lstsq(a, torch.nn.functional.one_hot(y).double()).solution
    acc = (torch.cat([xt, torch.ones(len(xt), 1)], 1).double() @ coef).argmax(1).eq(yt).double().mean()
    assert 0.2 < float(acc) < 0.8

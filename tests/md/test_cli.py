"""``nclab md`` and ``nclab md sweep``."""

import json

import pytest
from typer.testing import CliRunner

import nclab.md as md
from nclab.cli.app import app

runner = CliRunner()


def test_md_json_keys_and_values():
    out = runner.invoke(app, ["md", "--lambda-w", "1e-3", "--lambda-h", "1e-3", "--alpha", "0.1",
                              "--eta", "0.02", "--cmd", "1.0", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert set(data) == {"ce", "ls"}
    want = md.compare_ce_ls(alpha=0.1, lambda_w=1e-3, lambda_h=1e-3, eta=0.02, c_md=1.0)
    for key in ["r_star", "dilation", "r_max", "memorization"]:
        assert data["ce"][key] == pytest.approx(getattr(want.ce, key))
        assert data["ls"][key] == pytest.approx(getattr(want.ls, key))
    assert data["ce"]["alpha"] == 0.0 and data["ls"]["alpha"] == 0.1


def test_md_forwards_options(monkeypatch):
    seen = {}
    real = md.compare_ce_ls

    def fake(**kw):
        seen.update(kw)
        return real(**kw)

    monkeypatch.setattr(md, "compare_ce_ls", fake)
    out = runner.invoke(app, ["md", "--alpha", "0.3", "--eta", "0.1", "--cmd", "2", "--dist", "two-point",
                              "--lambda-w", "2e-3", "--lambda-h", "5e-4"])
    assert out.exit_code == 0, out.output
    assert seen == dict(alpha=0.3, lambda_w=2e-3, lambda_h=5e-4, eta=0.1, c_md=2.0, dist="two-point",
                        num_classes=2)
    assert "CE (alpha=0)" in out.stdout and "Thm 4.3" in out.stdout


@pytest.mark.parametrize("args,match", [(["--alpha", "1.5"], "alpha"), (["--dist", "cube"], "dist"),
                                        (["--eta", "-1"], "eta")])
def test_md_user_errors(args, match):
    out = runner.invoke(app, ["md", *args])
    assert out.exit_code == 2
    assert out.stderr.startswith("error:") and match in out.stderr


def test_md_sweep_writes_figure_and_json(tmp_path):
    fig = tmp_path / "sweep.png"
    out = runner.invoke(app, ["md", "sweep", "--num", "3", "--eta-min", "1e-3", "--eta-max", "0.1",
                              "--alpha", "0.1", "--alpha", "0.3", "--cmd", "1", "--out", str(fig), "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert len(data["points"]) == 6
    assert fig.stat().st_size > 1000
    assert all(p["theorem_holds"] == (p["dilation_ce"] > p["dilation_ls"]) for p in data["points"])


def test_md_sweep_bad_range():
    out = runner.invoke(app, ["md", "sweep", "--eta-min", "0.5", "--eta-max", "0.1"])
    assert out.exit_code == 2 and "eta-min" in out.stderr

"""Every command answers a bad option value, an unknown option, a missing argument or an unreadable
file with one ``error: ...`` line and exit status 2 (not click's usage box)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from nclab.cli import app

runner = CliRunner()

CASES = [
    ["measure", "/nonexistent/features.npz"],
    ["measure", "--bogus"],
    ["ufm", "solve", "--classes", "abc"],
    ["ufm", "solve", "--tol", "-1"],
    ["ufm", "solve", "--bogus"],
    ["md", "--eta", "x"],
    ["md", "--num-classes"],
    ["md", "sweep", "--num", "x"],
    ["verify", "--bogus"],
    ["train", "--epochs", "x"],
    ["train", "--lr"],
    ["run"],
    ["run", "synthetic-smoke", "--preset"],
    ["sweep", "synthetic-smoke", "--workers", "x"],
    ["report", "--store"],
    ["export", "--format"],
    ["reproduce", "--workers", "x"],
    ["experiments", "--bogus"],
    ["nosuchcommand"],
]


@pytest.mark.parametrize("args", CASES, ids=lambda a: " ".join(a))
def test_one_error_line_exit_2(args):
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert "Traceback" not in res.output and "Usage:" not in res.output


def test_console_script_too():
    """The same through the real entry point (stderr, exit status of the process)."""
    proc = subprocess.run([sys.executable, "-c", "from nclab.cli import main; main()", "ufm", "solve",
                           "--classes", "abc"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error: nclab ufm solve: Invalid value for '--classes'")
    assert proc.stderr.count("\n") == 1


def test_help_and_no_arguments_still_show_help():
    res = runner.invoke(app, ["ufm", "solve", "--help"])
    assert res.exit_code == 0 and "--classes" in res.output
    res = runner.invoke(app, [])
    assert "Usage" in res.output and "error:" not in res.output

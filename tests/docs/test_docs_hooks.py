"""The API-reference build's griffe extension (docs/hooks/sphinx_roles.py): Sphinx roles become
autorefs references (optional where the target exists, required where it does not, so that the
strict build fails on a broken reference), outside names become code, math becomes arithmatex."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import pytest

griffe = pytest.importorskip("griffe")
ROOT = Path(__file__).resolve().parents[2]


def _hooks():
    spec = importlib.util.spec_from_file_location("sphinx_roles", ROOT / "docs/hooks/sphinx_roles.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_roles_and_math_are_converted(tmp_path):
    pkg = tmp_path / "nclab"  # the extension only links names under nclab
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent('''
        """Package."""
        from nclab.core import solve
        _LAZY = {"late": "nclab.later"}
        '''))
    (pkg / "core.py").write_text(textwrap.dedent('''
        """Core."""
        import numpy as np


        def solve(x):
            r"""Solve.

            See :func:`~nclab.core.helper`, :class:`Thing`, :func:`nclab.core.missing`,
            :func:`np.linalg.solve`, :exc:`ValueError`, :func:`nclab.late` and :math:`x^2`.

            .. math:: \\min_x f(x)
                      + g(x)
            """


        def helper():
            """Help."""


        class Thing:
            """A thing."""
        '''))
    (pkg / "later.py").write_text('"""Later."""\n\n\ndef late():\n    """Late."""\n')
    ext = griffe.load_extensions(_hooks().SphinxRoles())
    loaded = griffe.load("nclab", search_paths=[str(tmp_path)], extensions=ext, force_inspection=False)
    doc = loaded["core"]["solve"].docstring.value
    assert '<autoref identifier="nclab.core.helper" optional><code>helper</code></autoref>' in doc
    assert '<autoref identifier="nclab.core.Thing" optional><code>Thing</code></autoref>' in doc
    assert "[`nclab.core.missing`][nclab.core.missing]" in doc  # required: strict build fails
    assert "`np.linalg.solve`" in doc and "`ValueError`" in doc and "autoref identifier=\"np" not in doc
    assert '<autoref identifier="nclab.later.late" optional>' in doc  # lazily exported name
    assert "$x^2$" in doc and ":math:" not in doc and ":func:" not in doc
    block = doc[doc.index("$$"):]
    assert block.startswith("$$\n") and "\\min_x f(x)" in block and "+ g(x)" in block
    assert block.rstrip().endswith("$$")

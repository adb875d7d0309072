"""Command-line interface: ``nclab <command>``.

Each command lives in its own module under ``nclab.cli`` and registers itself on
:data:`nclab.cli.app.app`; this package imports the ones that exist.
"""

from __future__ import annotations

import importlib

from nclab.cli.app import app

_COMMAND_MODULES = ("measure", "ufm", "verify", "md", "train", "experiments")

for _name in _COMMAND_MODULES:
    try:
        importlib.import_module(f"nclab.cli.{_name}")
    except ModuleNotFoundError as _exc:  # a command module not written yet
        if _exc.name != f"nclab.cli.{_name}":
            raise


def main() -> None:
    """Entry point of the ``nclab`` console script."""
    app(prog_name="nclab")


__all__ = ["app", "main"]

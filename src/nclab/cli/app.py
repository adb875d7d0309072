"""The root typer application and the error boundary shared by every command.

Command modules import only typer/rich at module level; the science (torch, numpy, ...) is
imported inside each command so that ``nclab --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any, Iterator

import typer

app = typer.Typer(
    name="nclab",
    help="nclab: measure, model and reproduce neural collapse.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn an :class:`~nclab.errors.NCLabError`, or a missing optional dependency (an extra
    such as ``nclab[lab]``, :mod:`nclab._extras`), into one line on stderr and exit status 2."""
    from nclab.errors import NCLabError

    try:
        yield
    except NCLabError as exc:
        msg = " ".join(str(exc).split())
        typer.echo(f"error: {msg}", err=True)
        raise typer.Exit(code=2) from None
    except ModuleNotFoundError as exc:
        from nclab._extras import missing_extra_message

        msg = missing_extra_message(exc, _command_name())
        if msg is None:
            raise
        typer.echo(f"error: {msg}", err=True)
        raise typer.Exit(code=2) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(code=130) from None


def _command_name() -> str:
    """``nclab <command>`` of the running click context (for messages)."""
    import click

    ctx = click.get_current_context(silent=True)
    return ctx.command_path if ctx is not None else "nclab"


def print_json(obj: Any) -> None:
    """Print ``obj`` as JSON on stdout (NaN/inf become null: strict JSON)."""
    sys.stdout.write(json.dumps(_jsonable(obj), indent=2, allow_nan=False) + "\n")


def _jsonable(obj: Any) -> Any:
    import math

    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "tolist"):
        return _jsonable(obj.tolist())
    return obj

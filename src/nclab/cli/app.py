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
from typer.core import TyperGroup
from typer.exceptions import Abort, TyperException



def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class _OneLineErrors(TyperGroup):
    """The root command group: a bad option value, a missing argument or an unreadable file
    (click's usage errors) prints one ``error: ...`` line and exits 2, like every other user
    error, instead of click's usage box."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except TyperException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError" or not hasattr(exc, "format_message"):
                exc.show()  # the help screen of a command given no arguments
                sys.exit(getattr(exc, "exit_code", 2))
            ctx = getattr(exc, "ctx", None)
            where = f"{ctx.command_path}: " if ctx is not None else ""
            hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
            typer.echo(f"error: {where}{_one_line(exc.format_message())}{hint}", err=True)
            sys.exit(2)
        except Abort:
            typer.echo("interrupted", err=True)
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(
    name="nclab",
    help="nclab: measure, model and reproduce neural collapse.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_OneLineErrors,
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
    except MemoryError:
        typer.echo(f"error: {_command_name()} ran out of memory; use a smaller problem or a larger machine",
                   err=True)
        raise typer.Exit(code=2) from None
    except OSError as exc:  # a path or disk problem that no library layer named: still one line
        if isinstance(exc, BrokenPipeError):
            raise
        what = exc.strerror or type(exc).__name__
        where = f": {exc.filename}" if exc.filename else ""
        typer.echo(f"error: {what}{where} ({_one_line(str(exc))[:200]})", err=True)
        raise typer.Exit(code=2) from None


def ensure_dir(path, option: str = "--out"):
    """Create the output folder ``path`` of ``option`` now (before any long computation); an
    existing file there or an unwritable place raises a one-line :class:`~nclab.errors.InputFileError`."""
    import os
    import tempfile
    from pathlib import Path

    from nclab.errors import InputFileError

    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InputFileError(f"{option} {str(p)!r} exists and is not a folder; pass another {option}")
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".nclab-write-test-", dir=p)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputFileError(f"cannot write into {option} folder {str(p)!r} ({exc.strerror or exc}); "
                             f"pass a writable {option}") from None
    return p


def _command_name() -> str:
    """``nclab <command>`` of the running click context (for messages)."""
    try:  # typer >= 0.20 vendors click
        from typer._click.globals import get_current_context
    except ImportError:  # pragma: no cover - older typer on top of click
        from click import get_current_context

    ctx = get_current_context(silent=True)
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

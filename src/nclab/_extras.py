"""Optional dependencies: which ``pip install "nclab[...]"`` extra brings which module.

``pip install nclab`` installs what measuring, the unconstrained-features models, the
memorization-dilation model and ``nclab verify`` need (PyTorch, NumPy, SciPy, threadpoolctl,
safetensors, typer, rich). Experiments, sweeps, the hyper-parameter search, figures, reports,
MNIST-1D and the tracker/framework integrations live in extras (``pyproject.toml``):

=============  ==========================================================================
extra          modules
=============  ==========================================================================
``lab``        ray (Ray Tune), optuna, matplotlib, mnist1d, pydantic, pyarrow
``track``      tensorboard, mlflow
``hf``         transformers, accelerate (the ``Trainer`` needs it)
``lightning``  lightning
``docs``       mkdocs, mkdocstrings
=============  ==========================================================================

Library code imports these modules lazily, inside the function that needs them, either through
:func:`require` (which raises :class:`~nclab.errors.MissingExtraError` naming the extra) or with a
plain ``import``; the CLI turns both into one line ``error: ... pip install "nclab[lab]"`` and exit
status 2 (:func:`missing_extra_message`).
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from nclab.errors import MissingExtraError

__all__ = ["EXTRAS", "extra_for", "missing_extra_message", "require", "require_extra"]

#: top-level module name -> the extra that installs it
EXTRAS: dict[str, str] = {
    "ray": "lab",
    "optuna": "lab",
    "matplotlib": "lab",
    "mnist1d": "lab",
    "pydantic": "lab",
    "pyarrow": "lab",
    "tensorboard": "track",
    "mlflow": "track",
    "transformers": "hf",
    "accelerate": "hf",
    "lightning": "lightning",
    "mkdocs": "docs",
    "mkdocstrings": "docs",
}


def extra_for(module: str | None) -> str | None:
    """The extra that installs ``module`` (a dotted name; its top-level package decides), or None.

    Examples
    --------
    >>> extra_for("ray.tune.search.optuna")
    'lab'
    >>> extra_for("numpy") is None
    True
    """
    if not module:
        return None
    return EXTRAS.get(module.split(".", 1)[0])


def _message(module: str, extra: str, what: str | None) -> str:
    top = module.split(".", 1)[0]
    needs = f"{what} needs" if what else "this needs"
    return (f"{needs} the optional dependency {top!r}, which is not installed; "
            f'pip install "nclab[{extra}]" brings it.')


def missing_extra_message(exc: BaseException, what: str | None = None) -> str | None:
    """One-line message for a :class:`ModuleNotFoundError` of an optional dependency, else None.

    Parameters
    ----------
    exc : BaseException
        The exception caught (a :class:`~nclab.errors.MissingExtraError` keeps its own message).
    what : str, optional
        What needed the module (e.g. ``"nclab sweep --backend ray"``).

    Returns
    -------
    str or None
        None when ``exc`` is not a missing module of a known extra (a broken core install, a
        typo in user code): the caller should let it propagate.
    """
    if isinstance(exc, MissingExtraError):
        return str(exc)
    if not isinstance(exc, ModuleNotFoundError):
        return None
    extra = extra_for(exc.name)
    if extra is None:
        return None
    return _message(exc.name, extra, what)


def require(module: str, *, what: str | None = None) -> ModuleType:
    """Import ``module`` (a module of a known extra) or raise :class:`~nclab.errors.MissingExtraError`.

    Parameters
    ----------
    module : str
        Dotted module name, e.g. ``"ray.tune"``.
    what : str, optional
        What needs it, for the message (e.g. ``"the hyper-parameter search"``).

    Returns
    -------
    module

    Raises
    ------
    MissingExtraError
        When the module (or one it imports from the same extra) is not installed; the message
        names the ``pip install "nclab[...]"`` that brings it.

    Examples
    --------
    >>> require("numpy").__name__  # a core dependency imports as usual
    'numpy'
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        extra = extra_for(exc.name) or extra_for(module)
        if extra is None:
            raise
        raise MissingExtraError(_message(exc.name or module, extra, what), name=exc.name) from None


def require_extra(extra: str, *, what: str | None = None) -> None:
    """Check, without importing them, that every module of ``extra`` is installed.

    For commands that need a whole extra (``nclab run`` imports Ray, MNIST-1D and matplotlib in
    its cells, long after it starts): failing at once beats failing every cell.

    Parameters
    ----------
    extra : str
        ``"lab"``, ``"track"``, ``"hf"``, ``"lightning"`` or ``"docs"``.
    what : str, optional
        What needs it, for the message.

    Raises
    ------
    MissingExtraError
        Naming the first missing module and the ``pip install "nclab[...]"`` that brings it.
    ValueError
        For an unknown extra (a programming error, not a user's).
    """
    modules = [m for m, e in EXTRAS.items() if e == extra]
    if not modules:
        raise ValueError(f"unknown extra {extra!r}; one of {sorted(set(EXTRAS.values()))}")
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a None entry in sys.modules, a broken parent
            found = False
        if not found:
            raise MissingExtraError(_message(module, extra, what), name=module)

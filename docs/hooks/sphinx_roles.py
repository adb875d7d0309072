"""Griffe extension for the API reference: nclab's docstrings use Sphinx roles and ``.. math::``
(NumPy style, as scikit-learn and POT write them); mkdocstrings renders Markdown. This turns

* ``:func:`~nclab.ufm.solve``` (and ``:class:``, ``:meth:``, ``:mod:``, ``:attr:``, ``:data:``,
  ``:exc:``, ``:obj:``) into an autorefs cross-reference; names are resolved in the scope of the
  documented object (its module's imports and members) as Sphinx does. An nclab object that
  exists becomes an optional reference (a link where the site documents it, plain code where it
  does not, e.g. a private helper); an nclab name that exists nowhere becomes a required
  reference ``[solve][nclab.ufm.solve]``, so ``mkdocs build --strict`` fails on it (a broken
  reference). Names outside nclab (NumPy, SciPy, Ray, ...) become code, since no inventory of
  theirs is fetched (the build runs offline);
* ``:math:`x``` into ``$x$`` and a ``.. math::`` block into ``$$ ... $$`` (pymdownx.arithmatex).

Loaded by ``mkdocs.yml`` (``extensions: [docs/hooks/sphinx_roles.py]``); not part of nclab.
"""

from __future__ import annotations

import ast
import builtins
import re
import textwrap

import griffe

_BUILTINS = set(dir(builtins))
_ROLE = re.compile(r":(?:py:)?(func|class|meth|mod|attr|data|exc|obj):`(~?)([^`]+)`")
_MATH = re.compile(r":math:`([^`]+)`")
_BLOCK = re.compile(r"^(?P<indent>[ \t]*)\.\. math::[ \t]*(?P<first>.*)(?:\n|$)"
                    r"(?P<body>(?:(?P=indent)[ \t]+.*(?:\n|$)|[ \t]*\n)*)", re.MULTILINE)


def _resolve(obj: griffe.Object, target: str) -> str | None:
    """Full path of ``target`` seen from ``obj`` (None when it cannot be resolved)."""
    head, _, rest = target.partition(".")
    scope = obj
    while scope is not None:
        try:
            path = scope.resolve(head)
        except Exception:  # griffe.NameResolutionError and friends
            scope = scope.parent
            continue
        return f"{path}.{rest}" if rest else path
    return None


def _exists(obj: griffe.Object, path: str) -> bool:
    try:
        obj.modules_collection.get_member(path)
    except Exception:  # KeyError, alias resolution errors
        return False
    return True


def _lazy(obj: griffe.Object, path: str) -> str | None:
    """Where a name that a package exports lazily (its ``_LAZY`` dict literal) is defined."""
    parent, _, name = path.rpartition(".")
    try:
        table = ast.literal_eval(str(obj.modules_collection.get_member(parent).members["_LAZY"].value))
    except Exception:
        return None
    target = table.get(name) if isinstance(table, dict) else None
    if isinstance(target, str):
        return f"{target}.{name}"
    if isinstance(target, tuple) and len(target) == 2:
        return f"{target[0]}.{target[1]}" if target[1] else target[0]
    return None


def _convert(obj: griffe.Object, text: str) -> str:
    def block(m: re.Match) -> str:
        indent = m.group("indent")
        body = textwrap.dedent(m.group("body")).strip("\n")
        lines = [m.group("first").strip(), *body.splitlines()]
        tex = "\n".join(f"{indent}{line}" for line in lines if line.strip())
        return f"{indent}$$\n{tex}\n{indent}$$\n\n"

    def role(m: re.Match) -> str:
        tilde, target = m.group(2), m.group(3).strip()
        label = target.rsplit(".", 1)[-1] if tilde else target
        label = label.rstrip("()")
        target = target.rstrip("()")
        if target.split(".", 1)[0] == "nclab":
            path = target
        elif target.split(".", 1)[0] in _BUILTINS:
            return f"`{label}`"
        else:
            path = _resolve(obj, target)
            if path is None:
                path = target  # unresolvable: a required reference, reported by autorefs
            elif path.split(".", 1)[0] != "nclab":
                return f"`{label}`"  # outside nclab: no inventory offline
        if not _exists(obj, path):
            path = _lazy(obj, path) or path
        if _exists(obj, path):
            return f'<autoref identifier="{path}" optional><code>{label}</code></autoref>'
        return f"[`{label}`][{path}]"

    text = _BLOCK.sub(block, text)
    text = _MATH.sub(lambda m: f"${m.group(1)}$", text)
    return _ROLE.sub(role, text)


def _walk(obj: griffe.Object, seen: set[int]):
    if id(obj) in seen:
        return
    seen.add(id(obj))
    yield obj
    for member in obj.members.values():
        if member.is_alias:
            continue
        yield from _walk(member, seen)


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles and math in every docstring of a loaded package."""

    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        for obj in _walk(pkg, set()):
            if obj.docstring is not None:
                obj.docstring.value = _convert(obj, obj.docstring.value)

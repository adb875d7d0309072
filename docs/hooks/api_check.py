"""MkDocs hook: every public name of nclab's documented packages is in the built API reference and
has a docstring; otherwise a warning, which ``mkdocs build --strict`` turns into a failed build.

"Public" is a package's ``__all__``. A name counts as documented when the site has an anchor for
it, under the package (``nclab.ufm.solve``) or where it is defined (``nclab.ufm.solvers.solve``).
Functions and classes must have a docstring; data (``MODELS``, ``__version__``) need not.
Not part of nclab.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
import sys
from pathlib import Path

log = logging.getLogger("mkdocs.plugins.nclab_api_check")

PACKAGES = ("nclab", "nclab.errors", "nclab.measure", "nclab.metrics", "nclab.ufm", "nclab.theory",
            "nclab.md", "nclab.train", "nclab.experiments", "nclab.data", "nclab.nets", "nclab.losses")
_ID = re.compile(r'id="([A-Za-z0-9_.]+)"')


def on_post_build(config, **kwargs) -> None:
    ids: set[str] = set()
    for page in Path(config["site_dir"]).rglob("*.html"):
        ids.update(_ID.findall(page.read_text(encoding="utf-8", errors="replace")))
    problems = []
    for name in PACKAGES:
        module = importlib.import_module(name)
        public = getattr(module, "__all__", None)
        if public is None:
            problems.append(f"{name} has no __all__")
            continue
        lazy = getattr(module, "_LAZY", {})  # names imported on first use (maybe from an extra)
        for attr in public:
            if attr.startswith("__"):
                continue
            candidates = {f"{name}.{attr}"}
            if attr in lazy:
                target = lazy[attr]
                where, what = target if isinstance(target, tuple) else (target, attr)
                candidates.add(f"{where}.{what}" if what else where)
                try:  # the same object re-exported by a documented package
                    obj = getattr(module, attr)
                except ImportError:  # its extra is not installed
                    obj = None
                candidates |= {f"{p}.{attr}" for p in PACKAGES
                               if obj is not None and getattr(sys.modules.get(p), attr, None) is obj}
                if not candidates & ids:
                    problems.append(f"{name}.{attr} is public (in __all__) but not in the API reference")
                continue
            obj = getattr(module, attr)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                candidates.add(f"{obj.__module__}.{obj.__qualname__}")
                if not (obj.__doc__ or "").strip():
                    problems.append(f"{name}.{attr} has no docstring")
            if not candidates & ids:
                sub = sys.modules.get(f"{name}.{attr}")
                hint = ""
                if inspect.ismodule(sub) and not inspect.ismodule(obj):
                    hint = (f"; it shares its name with the submodule {name}.{attr}, so render it "
                            f"explicitly (::: {obj.__module__}.{attr})")
                problems.append(f"{name}.{attr} is public (in __all__) but not in the API reference{hint}")
    for p in problems:
        log.warning(p)

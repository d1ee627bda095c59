"""The hot-path modules compiled to C with mypyc, and the pure-Python fallback.

The modules in :data:`MODULES` are plain, type-hinted Python; the package runs
them as such everywhere. ``python -m flask_sio09.build_native`` (what ``make
venv`` does) compiles them with mypyc into extension modules beside their
sources, which Python then imports instead of the ``.py`` files: the same code
costs about a quarter fewer instructions per message (docs/performance.md).

A compiled module that no longer matches its source would run old code, so
the build records each source's SHA-256 in ``_native.json``; at import the
package checks the record and, when any source differs (or the record is
missing, or ``FLASK_SIO09_PURE=1`` is set), imports every one of them from
source. All or none: compiled modules call each other directly in C, so a
mix would still run the old code of the compiled ones.

    python -m flask_sio09.build_native          # needs mypy, setuptools and a C compiler
    python -m flask_sio09.build_native status   # compiled and in use, or why not
    python -m flask_sio09.build_native clean    # remove the compiled files
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TypeVar

T = TypeVar("T")

#: The modules compiled, in the package; the rest of it stays interpreted
#: (Flask glue, the WSGI side, Redis: not on the per-message path).
MODULES = ("packet", "wsframe", "session", "workers", "hub", "hub_websocket")
#: The shared library of the compiled group, inside the package.
GROUP = "flask_sio09._native"
PACKAGE_DIR = Path(__file__).resolve().parent
RECORD = PACKAGE_DIR / "_native.json"
#: Set to 1 to run the pure-Python modules although compiled ones are built.
PURE_ENV = "FLASK_SIO09_PURE"

_state = {"in_use": False, "why": "not checked"}


def source_digests() -> dict[str, str]:
    """SHA-256 of each compiled module's source, by module name."""
    return {name: hashlib.sha256((PACKAGE_DIR / f"{name}.py").read_bytes()).hexdigest()
            for name in MODULES}


def _extension_exists(name: str) -> bool:
    return any((PACKAGE_DIR / f"{name}{suffix}").exists()
               for suffix in importlib.machinery.EXTENSION_SUFFIXES)


def _built_here() -> bool | None:
    """Whether extension modules for this interpreter sit beside the sources:
    True for each module and the group's shared library, False for none of
    them, None for some (a build cut short, or files lost since)."""
    found = [_extension_exists(name)
             for name in (*MODULES, GROUP.rpartition(".")[2] + "__mypyc")]
    return True if all(found) else False if not any(found) else None


def _record_matches() -> str | None:
    """None when the build record matches the sources, else why not."""
    try:
        record = json.loads(RECORD.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "no build record (_native.json)"
    if record.get("cache_tag") != sys.implementation.cache_tag:
        return f"built for {record.get('cache_tag')}, not {sys.implementation.cache_tag}"
    if record.get("modules") != source_digests():
        return "the sources changed since the build"
    return None


class _FromSource(importlib.abc.MetaPathFinder):
    """Finds the compiled modules' ``.py`` sources ahead of their extensions."""

    def find_spec(self, fullname: str, path: object = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package != __package__ or name not in MODULES:
            return None
        return importlib.util.spec_from_file_location(fullname, PACKAGE_DIR / f"{name}.py")


def choose() -> None:
    """Decide, once, before any compiled module is imported, whether the
    compiled modules run; if not, make the sources load instead."""
    built = _built_here()
    if built is False:
        _state.update(in_use=False, why="not built")
        return
    why = "FLASK_SIO09_PURE is set" if os.environ.get(PURE_ENV, "") not in ("", "0") \
        else "an incomplete build: extension modules are missing" if built is None \
        else _record_matches()
    if why is None:
        _state.update(in_use=True, why="built from these sources")
        return
    _state.update(in_use=False, why=why)
    if not any(isinstance(finder, _FromSource) for finder in sys.meta_path):
        sys.meta_path.insert(0, _FromSource())
    if why != "FLASK_SIO09_PURE is set":
        warnings.warn(f"flask_sio09: the compiled modules are not used ({why}); running "
                      "the pure-Python code. Rebuild: python -m flask_sio09.build_native",
                      RuntimeWarning, stacklevel=2)


def in_use() -> bool:
    """Whether this process runs the compiled modules."""
    module = sys.modules.get(f"{__package__}.packet")
    if module is not None:  # (what was imported, whatever was decided)
        return not (module.__file__ or "").endswith(".py")
    return bool(_state["in_use"])


def status() -> str:
    """One line: compiled and in use, or why not."""
    return ("compiled with mypyc, in use" if in_use()
            else f"pure Python ({_state['why']})")


def clean() -> list[Path]:
    """Remove the compiled files and their record; return what was removed."""
    removed = []
    for path in sorted(PACKAGE_DIR.iterdir()):
        if path.name == RECORD.name or (
                path.name.split(".")[0] in (*MODULES, GROUP.rpartition(".")[2] + "__mypyc")
                and any(path.name.endswith(s) for s in importlib.machinery.EXTENSION_SUFFIXES)):
            path.unlink()
            removed.append(path)
    return removed


def write_record(digests: dict[str, str]) -> None:
    """Record which sources the compiled modules were built from."""
    RECORD.write_text(json.dumps({"cache_tag": sys.implementation.cache_tag,
                                  "modules": digests}, indent=1) + "\n", encoding="utf-8")


def mypyc_attr(*attrs: str, **kwattrs: object) -> Callable[[T], T]:
    """``mypy_extensions.mypyc_attr`` when that is not installed: the compiled
    modules' class options mean nothing to the interpreter."""
    return lambda cls: cls

"""The codec modules stay pure: no Flask, sockets or threads behind them.

The package ``__init__`` imports Flask, so the modules are loaded in a fresh
interpreter under a stub ``flask_sio09`` package whose ``__init__`` never runs.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "flask_sio09"
FORBIDDEN = ("flask", "werkzeug", "socket", "threading", "simple_websocket", "select",
             "selectors", "asyncio")

SCRIPT = """
import sys, types
pkg = types.ModuleType("flask_sio09")
pkg.__path__ = [sys.argv[1]]
sys.modules["flask_sio09"] = pkg
import flask_sio09.packet, flask_sio09.protocol
assert sys.modules["flask_sio09"] is pkg, "the package __init__ ran"
print(",".join(sorted(m for m in sys.argv[2:] if m in sys.modules)))
"""


def test_pure_modules_import_nothing_forbidden():
    result = subprocess.run(
        [sys.executable, "-I", "-c", SCRIPT, str(PACKAGE_DIR), *FORBIDDEN],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


ALLOWED = {
    "packet.py": {"__future__", "json", "re", "collections.abc", "decimal", "itertools",
                  "typing"},
    "protocol.py": {"__future__", "json", "re", "collections.abc", "dataclasses",
                    "urllib.parse", ".packet"},
}


def test_pure_modules_import_statements():
    for name, allowed in ALLOWED.items():
        tree = ast.parse((PACKAGE_DIR / name).read_text(encoding="utf-8"))
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                imported.add("." * node.level + (node.module or ""))
        assert imported <= allowed, (name, imported - allowed)

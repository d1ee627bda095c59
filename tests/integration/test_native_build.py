"""``python -m flask_sio09.build_native`` where a pip user runs it: on the package
installed among other top-level modules (site-packages), not in a checkout.

mypyc names modules from paths under its working folder; run there, it took the
other modules of site-packages (``mypy_extensions.py``) for part of the program and
the build failed, after removing the old build.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import mypy_extensions
import pytest

import flask_sio09

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

PACKAGE_DIR = Path(flask_sio09.__file__).resolve().parent


def _python(args, site, check=True):
    env = {k: v for k, v in os.environ.items() if k != "FLASK_SIO09_PURE"}
    env["PYTHONPATH"] = str(site)
    return subprocess.run([sys.executable, *args], cwd=site, env=env, capture_output=True,
                          text=True, timeout=540, check=check)


def test_the_build_works_beside_other_top_level_modules(tmp_path):
    site = tmp_path / "site-packages"
    site.mkdir()
    shutil.copytree(PACKAGE_DIR, site / "flask_sio09", ignore=shutil.ignore_patterns(
        "__pycache__", "*.so", "_native.json"))
    shutil.copy(mypy_extensions.__file__, site / "mypy_extensions.py")
    status = _python(["-m", "flask_sio09.build_native", "status"], site)
    assert status.stdout.strip() == "pure Python (not built)"
    built = _python(["-m", "flask_sio09.build_native"], site, check=False)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    status = _python(["-m", "flask_sio09.build_native", "status"], site)
    assert status.stdout.strip() == "compiled with mypyc, in use", status.stderr
    # everything it wrote is in the package's folder, and clean takes all of it
    assert sorted(p.name for p in site.iterdir()) == ["flask_sio09", "mypy_extensions.py"]
    _python(["-m", "flask_sio09.build_native", "clean"], site)
    left = sorted(p.name for p in (site / "flask_sio09").iterdir() if p.name != "__pycache__")
    assert left == sorted(p.name for p in PACKAGE_DIR.iterdir()
                          if p.suffix in (".py", ".typed"))

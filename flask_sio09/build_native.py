"""Compile the hot-path modules with mypyc (see :mod:`flask_sio09.native`).

    python -m flask_sio09.build_native [build]   # needs mypy, setuptools and a C compiler
    python -m flask_sio09.build_native status    # compiled and in use, or why not
    python -m flask_sio09.build_native clean     # remove the compiled files
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

from .native import GROUP, MODULES, PACKAGE_DIR, clean, source_digests, status, write_record


def build() -> None:
    """Compile :data:`MODULES` with mypyc into extension modules beside their
    sources, then write the build record.

    The compiler works on a copy of the package's sources in a temporary
    folder: mypyc names modules from paths under the current folder, and run
    where the package is installed (site-packages) it would take every other
    top-level module there for part of the program."""
    try:
        from mypyc.build import mypycify
        from setuptools import setup
    except ImportError as exc:
        sys.exit(f"flask_sio09.build_native: the build needs mypy and setuptools ({exc}); "
                 "pip install 'flask_sio09[compile]'")
    clean()
    digests = source_digests()
    with tempfile.TemporaryDirectory(prefix="flask_sio09-native-") as tmp:
        copy = Path(tmp, "src", PACKAGE_DIR.name)
        shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns(
            "__pycache__", *(f"*{suffix}" for suffix in EXTENSION_SUFFIXES)))
        cwd = os.getcwd()
        try:
            os.chdir(copy.parent)
            # (the modules not compiled are read for their types only: errors
            # there are not the build's business, as when the package is installed)
            extensions = mypycify(["--follow-imports=silent",
                                   *(f"{PACKAGE_DIR.name}/{name}.py" for name in MODULES)],
                                  opt_level="3", target_dir=str(Path(tmp, "c")),
                                  group_name=GROUP)
            # (from another folder, so that setuptools reads no project file;
            # --inplace puts the results beside the copied sources)
            os.chdir(tmp)
            setup(name="flask_sio09-native", ext_modules=extensions, packages=[],
                  py_modules=[], package_dir={"": str(copy.parent)},
                  script_args=["-q", "build_ext", "--inplace", "--build-temp",
                               str(Path(tmp, "o"))])
        finally:
            os.chdir(cwd)
        if source_digests() != digests:
            sys.exit("flask_sio09.build_native: a source changed during the build; run it again")
        for built in sorted(copy.iterdir()):
            if built.name.endswith(tuple(EXTENSION_SUFFIXES)):
                shutil.copyfile(built, PACKAGE_DIR / built.name)
    write_record(digests)


def main(argv: list[str]) -> int:
    """``build``, ``status`` or ``clean``."""
    command = argv[0] if argv else "build"
    if command == "build":
        build()
        print(f"flask_sio09.build_native: compiled {', '.join(MODULES)}")
    elif command == "clean":
        for path in clean():
            print(f"removed {path.name}")
    elif command == "status":
        print(status())  # (the package, imported first, chose)
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Compile the hot-path modules with mypyc (see :mod:`flask_sio09.native`).

    python -m flask_sio09.build_native [build]   # needs mypy, setuptools and a C compiler
    python -m flask_sio09.build_native status    # compiled and in use, or why not
    python -m flask_sio09.build_native clean     # remove the compiled files
"""

from __future__ import annotations

import os
import sys
import tempfile

from .native import GROUP, MODULES, PACKAGE_DIR, clean, source_digests, status, write_record


def build() -> None:
    """Compile :data:`MODULES` with mypyc into extension modules beside their
    sources, then write the build record. Build files go to a temporary folder."""
    try:
        from mypyc.build import mypycify
        from setuptools import setup
    except ImportError as exc:
        sys.exit(f"flask_sio09.build_native: the build needs mypy and setuptools ({exc}); "
                 "pip install 'flask_sio09[compile]'")
    clean()
    root = PACKAGE_DIR.parent
    digests = source_digests()
    with tempfile.TemporaryDirectory(prefix="flask_sio09-native-") as tmp:
        cwd = os.getcwd()
        try:
            os.chdir(root)  # (mypyc names the modules from paths under the current folder)
            extensions = mypycify([f"{PACKAGE_DIR.name}/{name}.py" for name in MODULES],
                                  opt_level="3", target_dir=tmp, group_name=GROUP)
            # (from the temporary folder, so that setuptools reads no project
            # file; package_dir puts the --inplace results beside the sources)
            os.chdir(tmp)
            setup(name="flask_sio09-native", ext_modules=extensions, packages=[],
                  py_modules=[], package_dir={"": str(root)},
                  script_args=["-q", "build_ext", "--inplace", "--build-temp", tmp])
        finally:
            os.chdir(cwd)
    if source_digests() != digests:
        clean()
        sys.exit("flask_sio09.build_native: a source changed during the build; run it again")
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

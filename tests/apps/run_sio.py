"""Serve an app with ``sio.run``: ``python -m tests.apps.run_sio PORT [MODULE]``.

``MODULE`` (default ``tests.apps.e2e_app``) must define ``app`` and ``sio``.
"""

import importlib
import sys


def main(argv: list[str]) -> None:
    port = int(argv[1])
    module = importlib.import_module(argv[2] if len(argv) > 2 else "tests.apps.e2e_app")
    module.sio.run(module.app, host="127.0.0.1", port=port, debug=False)


if __name__ == "__main__":
    main(sys.argv)

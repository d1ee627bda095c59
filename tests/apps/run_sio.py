"""Serve an app with ``sio.run``: ``python -m tests.apps.run_sio PORT [MODULE [CERT KEY]]``.

``MODULE`` (default ``tests.apps.e2e_app``) must define ``app`` and ``sio``;
with ``RUN_DEBUG = True`` it is served with ``debug=True`` (the debugger, no reloader).
``CERT`` and ``KEY`` (PEM files) serve it over TLS.
"""

import importlib
import sys


def main(argv: list[str]) -> None:
    port = int(argv[1])
    module = importlib.import_module(argv[2] if len(argv) > 2 else "tests.apps.e2e_app")
    debug = getattr(module, "RUN_DEBUG", False)
    tls = {"ssl_context": (argv[3], argv[4])} if len(argv) > 4 else {}
    module.sio.run(module.app, host="127.0.0.1", port=port, debug=debug, use_reloader=False,
                   **tls)


if __name__ == "__main__":
    main(sys.argv)

"""Serve the end-to-end app with ``sio.run``: ``python -m tests.apps.run_sio PORT``."""

import sys

from tests.apps.e2e_app import app, sio


def main(argv: list[str]) -> None:
    port = int(argv[1])
    sio.run(app, host="127.0.0.1", port=port, debug=False)


if __name__ == "__main__":
    main(sys.argv)

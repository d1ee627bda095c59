"""``python -m example_app``: the chat on Werkzeug's threaded server, WebSocket included.

The port comes from ``--port`` or ``PORT`` (default 5000); the server listens on
127.0.0.1 only. ``--help`` lists the options.
"""

import argparse
import os

from example_app import app, sio


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m example_app",
        description="Serve the flask_sio09 example chat on http://127.0.0.1:PORT/.")
    parser.add_argument("--port", type=int, default=None,
                        help="the port to listen on (default: $PORT, else 5000)")
    parser.add_argument("--debug", action="store_true",
                        help="Flask's debug mode: the reloader and Werkzeug's debugger")
    args = parser.parse_args()
    if args.port is None:
        try:
            args.port = int(os.environ.get("PORT", 5000))
        except ValueError:
            parser.error(f"PORT must be a number, not {os.environ['PORT']!r}")
    if not 0 < args.port < 65536:
        parser.error(f"the port must be between 1 and 65535, not {args.port}")
    return args


if __name__ == "__main__":
    options = parse_args()
    print(f"flask_sio09 example chat on http://127.0.0.1:{options.port}/", flush=True)
    sio.run(app, host="127.0.0.1", port=options.port, debug=options.debug)

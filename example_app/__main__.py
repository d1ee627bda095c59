"""``python -m example_app``: the chat on Werkzeug's threaded server, WebSocket included.

The port comes from ``PORT`` (default 5000); the server listens on 127.0.0.1 only.
"""

import os

from example_app import app, sio

if __name__ == "__main__":
    port = int(os.environ.get("PORT", 5000))
    print(f"flask_sio09 example chat on http://127.0.0.1:{port}/", flush=True)
    sio.run(app, host="127.0.0.1", port=port)

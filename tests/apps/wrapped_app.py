"""The app wrapped as deployments wrap it, chosen by ``SIO09_TEST_WRAP``:

* ``subclass``: a ``Flask`` subclass with its own ``__call__``;
* ``patched``: ``Flask.__call__`` replaced, as tracers do (Sentry's Flask
  integration calls the original from a wrapper of its own);
* ``proxyfix``: ``ProxyFix`` around the Flask object, the WSGI server's target;
* anything else: the Flask app itself.
"""

import os

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from flask_sio09 import SocketIO

WRAP = os.environ.get("SIO09_TEST_WRAP", "")


class SubclassedFlask(Flask):
    def __call__(self, environ, start_response):
        return super().__call__(environ, start_response)


if WRAP == "patched":
    _original_call = Flask.__call__

    def _traced_call(self, environ, start_response):
        return (lambda: _original_call(self, environ, start_response))()

    Flask.__call__ = _traced_call

flask_app = (SubclassedFlask if WRAP == "subclass" else Flask)(__name__)
sio = SocketIO(flask_app)


@flask_app.route("/")
def index():
    return "wrapped app"


@sio.on("echo")
def echo(*args):
    return args


app = ProxyFix(flask_app) if WRAP == "proxyfix" else flask_app

"""A Socket.IO app mounted under ``/pre`` beside another app, as
``DispatcherMiddleware`` does it: ``app`` is the whole site, ``sio`` serves the
mounted one. Both answer their own pages, so a test can see which app served
a request."""

from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from flask_sio09 import SocketIO

root = Flask("root")
mounted = Flask("mounted")
sio = SocketIO(mounted)


@root.route("/")
def root_page():
    return "root app"


@root.route("/other")
def root_other():
    return "root other"


@mounted.route("/")
def mounted_page():
    return "mounted app"


@sio.on("echo")
def echo(*args):
    return args


app = DispatcherMiddleware(root, {"/pre": mounted})

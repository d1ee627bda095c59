"""Options from ``app.config`` (``SIO09_*``), their checks at ``init_app``, and the
app factory pattern with several apps in one process."""

import logging

import pytest
from flask import Flask

from flask_sio09 import SocketIO, emit
from flask_sio09.options import OptionError


@pytest.fixture
def made():
    apps = []
    yield apps
    for app in apps:
        state = app.extensions.get("sio09")
        if state is not None:
            state.server.shutdown()


def new_app(made, config=None):
    app = Flask(__name__)
    app.config.update(config or {})
    made.append(app)
    return app


CONFIG_CASES = [
    ("SIO09_RESOURCE", "/io/", "resource", "io"),
    ("SIO09_TRANSPORTS", "xhr-polling,websocket", "transports", ("xhr-polling", "websocket")),
    ("SIO09_TRANSPORTS", ["websocket"], "transports", ("websocket",)),
    ("SIO09_HEARTBEAT_TIMEOUT", 30, "heartbeat_timeout", 30),
    ("SIO09_HEARTBEAT_INTERVAL", 10, "heartbeat_interval", 10),
    ("SIO09_CLOSE_TIMEOUT", 45, "close_timeout", 45),
    ("SIO09_POLLING_DURATION", 5.5, "polling_duration", 5.5),
    ("SIO09_CORS_ALLOWED_ORIGINS", "*", "cors_allowed_origins", "*"),
    ("SIO09_CORS_ALLOWED_ORIGINS", ["https://a.example"], "cors_allowed_origins",
     ["https://a.example"]),
    ("SIO09_MAX_HTTP_BUFFER_SIZE", 1234, "max_http_buffer_size", 1234),
    ("SIO09_WEBSOCKET_MODE", "thread", "websocket_mode", "thread"),
    ("SIO09_HANDLER_THREADS", 3, "handler_threads", 3),
]


@pytest.mark.parametrize("key,value,option,expected", CONFIG_CASES)
def test_options_come_from_app_config(made, key, value, option, expected):
    app = new_app(made, {key: value})
    SocketIO(app)
    assert getattr(app.extensions["sio09"].server.options, option) == expected


def test_an_explicit_argument_wins_over_the_config(made):
    app = new_app(made, {"SIO09_HEARTBEAT_TIMEOUT": 30, "SIO09_RESOURCE": "from-config"})
    SocketIO(app, resource="from-argument")
    options = app.extensions["sio09"].server.options
    assert options.resource == "from-argument" and options.heartbeat_timeout == 30


def test_init_app_options_win_over_constructor_options(made):
    sio = SocketIO(heartbeat_timeout=40)
    one, two = new_app(made), new_app(made)
    sio.init_app(one)
    sio.init_app(two, heartbeat_timeout=50)
    assert one.extensions["sio09"].server.options.heartbeat_timeout == 40
    assert two.extensions["sio09"].server.options.heartbeat_timeout == 50


INVALID = [
    ("resource", ""),
    ("resource", 5),
    # a query in the resource would split the handshake's path from its query
    ("resource", "socket.io?x=1"),
    ("transports", ["carrier-pigeon"]),
    ("transports", []),
    ("transports", ["websocket", "xhr-polling", "websocket"]),
    ("heartbeat_timeout", 0),
    ("heartbeat_timeout", float("inf")),
    ("heartbeat_interval", float("nan")),
    ("polling_duration", float("nan")),
    ("close_timeout", float("inf")),
    ("heartbeat_timeout", "60"),
    ("heartbeat_interval", 90),  # not below heartbeat_timeout
    ("close_timeout", -1),
    ("polling_duration", 100),  # not below close_timeout
    # equal is not below either: the client drops the poll that lasts close_timeout
    ("polling_duration", 60),
    ("polling_duration", True),
    ("cors_allowed_origins", 42),
    ("max_http_buffer_size", 0),
    ("max_http_buffer_size", 1.5),
    ("handler_threads", -1),
    ("handler_threads", 2.5),
    ("websocket_mode", "fast"),
    ("logger", "yes"),
    ("write_only", "yes"),
    ("message_queue", "http://127.0.0.1:6379/0"),
    ("message_queue", 6379),
    # an app's server is never write-only: that makes an emitter without an app
    ("write_only", True),
]


@pytest.mark.parametrize("option,value", INVALID)
def test_invalid_argument_fails_at_init_app_naming_the_option(made, option, value):
    with pytest.raises(OptionError, match=f"'{option}'"):
        SocketIO(new_app(made), **{option: value})


@pytest.mark.parametrize("option,value", INVALID)
def test_invalid_config_value_fails_at_init_app_naming_the_option(made, option, value):
    app = new_app(made, {f"SIO09_{option.upper()}": value})
    sio = SocketIO()
    with pytest.raises(OptionError, match=f"'{option}'"):
        sio.init_app(app)
    assert "sio09" not in app.extensions  # nothing half-installed


@pytest.mark.parametrize("options,message", [
    ({"write_only": True}, "needs 'message_queue'"),
    ({"write_only": 1}, "True or False"),
    ({"message_queue": "memcached://127.0.0.1", "write_only": True}, "Redis URL"),
    ({"message_queue": "redis://127.0.0.1:6379/0", "write_only": True, "heartbeat_timout": 5},
     "unknown option"),
])
def test_a_write_only_emitter_with_bad_options_is_refused_when_made(options, message):
    """Refused at once, not at the first emit."""
    with pytest.raises(OptionError, match=message):
        SocketIO(**options)


def test_a_write_only_emitter_serves_no_app(made):
    url = "redis://127.0.0.1:6379/0"
    with pytest.raises(OptionError, match="emitter without an app"):
        SocketIO(new_app(made), message_queue=url, write_only=True)
    emitter = SocketIO(message_queue=url, write_only=True)  # no connection yet
    with pytest.raises(RuntimeError, match="emitter"):
        emitter.init_app(new_app(made))
    with pytest.raises(ValueError, match="write_only emitter has none"):
        emitter.emit("news", callback=lambda: None)


def test_a_message_queue_url_reaches_the_server(made):
    app = new_app(made)
    SocketIO(app, message_queue="redis://127.0.0.1:1/0")
    server = app.extensions["sio09"].server
    assert server.options.message_queue == "redis://127.0.0.1:1/0"
    assert type(server.manager).__name__ == "RedisManager"


def test_an_unknown_option_is_refused(made):
    with pytest.raises(OptionError, match="heartbeat_timout"):
        SocketIO(new_app(made), heartbeat_timout=5)


def test_init_app_twice_on_one_app_is_an_error(made):
    app = new_app(made)
    sio = SocketIO(app)
    with pytest.raises(RuntimeError, match="already"):
        sio.init_app(app)


def test_the_resource_option_moves_the_handshake(made):
    app = new_app(made, {"SIO09_RESOURCE": "io"})
    sio = SocketIO(app)
    http = app.test_client()
    assert http.get("/io/1/").status_code == 200
    assert http.get("/socket.io/1/").status_code == 404
    assert sio.test_client(app).is_connected()  # the test client follows the option


def create_app(sio, made, name):
    """An app factory in the usual shape: the extension is made at import time."""
    app = new_app(made, {"SIO09_HEARTBEAT_TIMEOUT": 33})
    app.name = name

    @app.get("/name")
    def app_name():
        return name

    sio.init_app(app)
    return app


def test_factory_pattern_with_several_apps_in_one_process(made):
    sio = SocketIO()

    @sio.on("whoami")
    def whoami():
        from flask import current_app
        return current_app.name

    @sio.on("shout")
    def shout(text):
        emit("shouted", text, broadcast=True)

    with pytest.raises(RuntimeError, match="init_app"):
        sio.emit("too early")
    one = create_app(sio, made, "one")
    two = create_app(sio, made, "two")
    assert one.extensions["sio09"].server is not two.extensions["sio09"].server
    assert one.extensions["sio09"].server.options.heartbeat_timeout == 33
    a1, a2 = sio.test_client(one), sio.test_client(one)
    b1 = sio.test_client(two)
    assert a1.emit("whoami", callback=True) == ["one"]
    assert b1.emit("whoami", callback=True) == ["two"]
    # a broadcast stays inside its app
    a1.emit("shout", "hi")
    shouted = [{"name": "shouted", "args": ["hi"], "namespace": "/"}]
    assert a1.get_received() == a2.get_received() == shouted
    assert b1.get_received() == []
    # from outside a handler, an app context names the app...
    with one.app_context():
        sio.emit("news", 1)
    assert a1.get_received() == [{"name": "news", "args": [1], "namespace": "/"}]
    assert b1.get_received() == []
    # ...and without one, the app initialised last serves, as with
    # Flask-SocketIO (a test suite that makes an app per test emits to its own)
    sio.emit("news", 2)
    assert b1.get_received() == [{"name": "news", "args": [2], "namespace": "/"}]
    assert a1.get_received() == []
    # the apps' own routes are untouched
    assert one.test_client().get("/name").get_data(as_text=True) == "one"


def test_run_with_debug_sets_app_debug_as_app_run_does(monkeypatch):
    # else Flask answers a plain 500 page and Werkzeug's debugger never sees an error
    import werkzeug.serving

    from flask import Flask

    from flask_sio09 import SocketIO

    import signal

    # (run installs a TERM handler when none is set; this process keeps its own)
    monkeypatch.setattr(signal, "signal", lambda *args: None)
    werkzeug_level = logging.getLogger("werkzeug").level
    served = []
    monkeypatch.setattr(werkzeug.serving, "run_simple",
                        lambda host, port, app, **kw: served.append((app, kw, host, port)))
    app = Flask(__name__)
    sio = SocketIO(app)
    try:
        sio.run(app, port=5999, use_reloader=False)
        assert not app.debug and served[-1][1]["use_debugger"] is False
        sio.run(app, port=5999, debug=True, use_reloader=False)
        assert app.debug and served[-1][1]["use_debugger"] is True
        # Flask-SocketIO 5 calls, ported as they were
        sio.run(app, port=5999, use_reloader=False, allow_unsafe_werkzeug=True)
        assert "allow_unsafe_werkzeug" not in served[-1][1]
        sio.run(app, None, None, use_reloader=False, log_output=False,
                reloader_options={"reloader_type": "stat"})
        assert served[-1][1]["reloader_type"] == "stat"
        assert "log_output" not in served[-1][1] and "reloader_options" not in served[-1][1]
        assert served[-1][2:] == ("127.0.0.1", 5000)
        assert logging.getLogger("werkzeug").level == logging.WARNING
    finally:
        logging.getLogger("werkzeug").setLevel(werkzeug_level)
        app.extensions["sio09"].server.shutdown()


def test_an_app_let_go_of_takes_its_server_and_monitor_thread_with_it():
    # a test suite that makes an app per test with one module-level SocketIO
    # must not keep every app, and a monitor thread for each, to the end
    import gc

    from tests.unit.doubles import wait_until

    sio = SocketIO()
    sio.on("ping")(lambda: "pong")
    monitors = []  # (the Thread objects hold the server weakly)
    for _ in range(5):
        app = Flask(__name__)
        sio.init_app(app)
        client = sio.test_client(app)
        assert client.emit("ping", callback=True) == ["pong"]
        monitor = app.extensions["sio09"].server._monitor
        assert monitor is not None and monitor.is_alive()
        monitors.append(monitor)
        client.disconnect()
        del app, client, monitor
    gc.collect()
    # all but the last app went (it serves outside an app context, as
    # Flask-SocketIO's server does, until another init_app)
    assert wait_until(lambda: not any(m.is_alive() for m in monitors[:-1]), deadline=30)
    assert monitors[-1].is_alive()
    sio.emit("news")


def test_an_app_made_only_to_set_up_the_socketio_serves_its_emits():
    # a script or a task worker calls create_app() for its side effects and
    # drops the app, then emits (through a message queue, in real life): the
    # app initialised last is kept for that, whenever the collector runs
    import gc

    sio = SocketIO()
    sio.init_app(Flask(__name__))
    gc.collect()
    sio.emit("news", 1)

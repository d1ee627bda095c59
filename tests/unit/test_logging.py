"""The ``logger`` option, debug lines with sids, and no payload data above DEBUG."""

import logging

import pytest
from flask import Flask

from flask_sio09 import SocketIO, emit
from flask_sio09.compat import BaseNamespace, socketio_manage
from flask_sio09.options import OptionError

LIBRARY = "flask_sio09"
SECRET = "hunter2zq"  # short: the codec quotes at most 10 characters of a bad packet


@pytest.fixture(autouse=True)
def restore_library_logger():
    """The ``logger`` option configures the library's logger: put it back."""
    library = logging.getLogger(LIBRARY)
    saved = (library.level, list(library.handlers), library.propagate)
    yield
    library.setLevel(saved[0])
    library.handlers = saved[1]
    library.propagate = saved[2]


@pytest.fixture
def make_app():
    made = []

    def factory(**options):
        app = Flask(__name__)
        sio = SocketIO(app, **options)
        made.append(app)
        return app, sio

    yield factory
    for app in made:
        app.extensions["sio09"].server.shutdown()


class ListHandler(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def test_logger_true_logs_the_library_at_info(make_app):
    logging.getLogger(LIBRARY).setLevel(logging.NOTSET)
    make_app(logger=True)
    assert logging.getLogger(LIBRARY).getEffectiveLevel() == logging.INFO


def test_logger_false_leaves_logging_alone(make_app):
    library = logging.getLogger(LIBRARY)
    library.setLevel(logging.ERROR)
    make_app(logger=False)
    assert library.level == logging.ERROR


def test_a_logger_object_receives_the_librarys_records(make_app):
    mine = logging.getLogger("my_app.sockets")
    mine.setLevel(logging.WARNING)
    handler = ListHandler()
    mine.addHandler(handler)
    try:
        app, sio = make_app(logger=mine)

        @sio.on("twice")
        def twice(ack=None):
            ack(1)
            ack(2)  # a second answer is ignored with a warning

        client = sio.test_client(app)
        assert client.emit("twice", callback=True) == [1]
        messages = [r.getMessage() for r in handler.records]
        assert any("answered twice" in m for m in messages), messages
        assert all(r.levelno >= logging.WARNING for r in handler.records)
    finally:
        mine.removeHandler(handler)


def test_the_librarys_own_logger_as_the_logger_option_logs_once(make_app):
    """logger=logging.getLogger("flask_sio09"): the records stay where the
    application set that logger up (they were handed back to it for ever:
    RecursionError, in the hub thread on a server)."""
    library = logging.getLogger(LIBRARY)
    handler = ListHandler()
    library.addHandler(handler)
    library.setLevel(logging.WARNING)
    app, sio = make_app(logger=library)

    @sio.on("twice")
    def twice(ack=None):
        ack(1)
        ack(2)

    client = sio.test_client(app)
    assert client.emit("twice", callback=True) == [1]
    assert [r.getMessage() for r in handler.records if "answered twice" in r.getMessage()] \
        and len(handler.records) == 1


def test_a_logger_under_the_librarys_is_refused(make_app):
    with pytest.raises(OptionError, match="child of the 'flask_sio09' logger"):
        make_app(logger=logging.getLogger(LIBRARY + ".app"))
    make_app(logger=logging.getLogger(LIBRARY + "x"))  # a name that only starts alike


def test_an_invalid_logger_fails_at_init_app(make_app):
    with pytest.raises(OptionError, match="logger"):
        make_app(logger="verbose")


def test_debug_lines_name_the_sid_for_handshake_connection_and_packets(make_app, caplog):
    app, sio = make_app()

    @sio.on("echo", namespace="/chat")
    def echo(x):
        emit("echoed", x)
        return x

    with caplog.at_level(logging.DEBUG, logger=LIBRARY):
        client = sio.test_client(app, namespace="/chat")
        client.emit("echo", 1, callback=True)
        client.disconnect("/")
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    sid = client.sid

    def has(*words):
        return any(sid in line and all(w in line for w in words) for line in lines)

    assert has("handshake"), lines
    assert has("opened"), lines
    assert has("joined", "/chat"), lines
    assert has("received", "5:1+:/chat:"), lines
    assert has("emit"), lines
    assert has("data ack"), lines
    assert has("closed"), lines


def test_no_payload_above_debug(make_app, caplog):
    """Send packets carrying a secret through every path that logs, capture at
    DEBUG, and check the secret shows only in DEBUG lines."""
    app, sio = make_app()

    @sio.on("store")
    def store(value):
        emit("stored", value)
        return value

    @sio.on("message")
    def message(data):
        return data

    class Guarded(BaseNamespace):
        def get_initial_acl(self):
            return set()

    socketio_manage(sio, {"/guarded": Guarded})

    with caplog.at_level(logging.DEBUG, logger=LIBRARY):
        client = sio.test_client(app, query_string=f"token={SECRET}")
        client.emit("store", SECRET, callback=True)
        client.emit("no handler", SECRET)
        client.send(SECRET, callback=True)
        client.send({"k": SECRET}, json=True)
        client.connect("/guarded")
        client.emit("private", SECRET, namespace="/guarded")
        session = client.server.get_session(client.sid)
        # malformed packets whose bytes the codec quotes in its error message
        client.server.receive(session, "9" + SECRET)
        client.server.receive(session, f"6:::{SECRET}+[]")
        client.server.receive(session, f"\ufffd3\ufffd{SECRET}")
        client.disconnect("/")

    debug = [r.getMessage() for r in caplog.records if r.levelno <= logging.DEBUG]
    above = [(r.levelname, r.getMessage()) for r in caplog.records if r.levelno > logging.DEBUG]
    assert any(SECRET in line for line in debug), "the capture saw no packet at all"
    assert any(level == "INFO" for level, _ in above), "no INFO line was produced"
    leaks = [(level, line) for level, line in above if SECRET in line]
    assert leaks == []


def test_a_post_to_an_unknown_session_is_answered_and_logged(make_app, caplog):
    """Its packets cannot be delivered: the client gets N's "1", its next poll
    the unknown-session error, and the log says what was dropped (not what)."""
    app, _ = make_app()
    http = app.test_client()
    with caplog.at_level(logging.INFO, logger=LIBRARY):
        answer = http.post("/socket.io/1/xhr-polling/nosuchsession",
                           data=f'5:::{{"name":"e","args":["{SECRET}"]}}')
    assert (answer.status_code, answer.get_data(as_text=True)) == (200, "1")
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("unknown or ended session" in line and "bytes dropped" in line
               for line in lines), lines
    assert not any(SECRET in line for line in lines)
    poll = http.get("/socket.io/1/xhr-polling/nosuchsession")
    assert poll.get_data(as_text=True) == "7:::1+0"


def test_an_event_on_a_namespace_not_connected_is_dropped_and_logged(make_app, caplog):
    app, sio = make_app()
    ran = []
    sio.on("e", namespace="/nowhere")(lambda *args: ran.append(args))
    client = sio.test_client(app)
    session = client.server.get_session(client.sid)
    with caplog.at_level(logging.INFO, logger=LIBRARY):
        client.server.receive(session, '5:1+:/nowhere:{"name":"e","args":["%s"]}' % SECRET)
    assert ran == []
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("namespace not connected dropped" in line and client.sid in line
               for line in lines), lines
    assert not any(SECRET in line for line in lines)
    assert client.get_received("/nowhere") == []  # no ack for it either


def test_a_flood_of_bad_packets_logs_a_few_lines_per_session_then_a_count(
        make_app, caplog, monkeypatch):
    """One INFO line per dropped packet let a client grow the log faster than
    its input: each session gets a few lines per window, one that says the
    rest go unlogged, and a count of them in its next window. DEBUG still has
    each one."""
    from flask_sio09 import droplog

    app, _ = make_app()
    clock = [1000.0]
    monkeypatch.setattr(droplog.time, "monotonic", lambda: clock[0])
    flooder, other = app.extensions["sio09"].sio.test_client(app), \
        app.extensions["sio09"].sio.test_client(app)
    server = flooder.server
    bad = ["4:::{", '5:::{"name":1}', '5:::/nope:{"name":"x"}', "7:::x", "99::junk"]
    with caplog.at_level(logging.INFO, logger=LIBRARY):
        for i in range(1000):
            server.receive(server.get_session(flooder.sid), bad[i % len(bad)])
        server.receive(server.get_session(other.sid), "4:::{")  # another session's own lines
        clock[0] += droplog.WINDOW
        server.receive(server.get_session(flooder.sid), "4:::{")
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    flooder_lines = [line for line in lines if flooder.sid in line]
    assert len(flooder_lines) == droplog.BURST + 1 + 2, flooder_lines
    assert "too many lines about dropped input or failed handlers; none for" \
        in flooder_lines[droplog.BURST]
    assert f"{1000 - droplog.BURST} more lines about dropped input or failed handlers were " \
        "not logged" in flooder_lines[-2]
    assert "bad packet dropped" in flooder_lines[-1]
    assert any(other.sid in line and "bad packet dropped" in line for line in lines)
    assert flooder.is_connected() and other.is_connected()


def test_the_unlogged_count_is_said_when_the_session_ends(make_app, caplog, monkeypatch):
    # a client that floods and leaves within the window still has its count said
    from flask_sio09 import droplog

    app, sio = make_app()
    monkeypatch.setattr(droplog.time, "monotonic", lambda: 1000.0)
    client = sio.test_client(app)
    server = client.server
    with caplog.at_level(logging.INFO, logger=LIBRARY):
        for _ in range(50):
            server.receive(server.get_session(client.sid), "4:::{")
        client.disconnect()
    lines = [r.getMessage() for r in caplog.records
             if r.levelno == logging.INFO and client.sid in r.getMessage()]
    assert f"{50 - droplog.BURST} more lines about dropped input or failed handlers were " \
        "not logged" in lines[-1]


def test_refused_requests_without_a_session_are_limited_across_the_process(
        make_app, caplog, monkeypatch):
    # requests that no session counts (an unknown transport, a POST to an
    # ended session, a bad upgrade) are limited per kind, for the process
    from flask_sio09 import droplog

    app, _ = make_app()
    http = app.test_client()
    with caplog.at_level(logging.INFO, logger=LIBRARY):
        for i in range(200):
            http.get(f"/socket.io/1/{'t' * 200}{i}/sid")
            http.post("/socket.io/1/xhr-polling/nosuchsession", data="5:::x")
            http.get("/socket.io/1/websocket/nosuchsession",
                     headers={"Upgrade": "websocket", "Connection": "Upgrade"})
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    notices = [line for line in lines if line.startswith("requests of kind")]
    assert len(notices) == 3, notices  # one "no more lines" for each kind
    lines = [line for line in lines if line not in notices]
    transports = [line for line in lines if "unknown or disabled transport" in line]
    posts = [line for line in lines if "POST to an unknown or ended session" in line]
    upgrades = [line for line in lines if "websocket upgrade" in line]
    assert len(transports) == len(posts) == len(upgrades) == droplog.BURST, lines[:20]
    assert all(len(line) < 120 for line in transports)  # (the name is cut short)
    assert len(lines) == 3 * droplog.BURST, lines


def test_a_handler_that_raises_with_every_packet_logs_a_few_tracebacks(make_app, caplog):
    # a client can make a handler raise with each packet (missing arguments):
    # a few tracebacks per session, then a count, not one each
    from flask_sio09 import droplog
    from flask_sio09.compat import BaseNamespace, socketio_manage

    app, sio = make_app()
    sio.on("two")(lambda a, b: a + b)

    class Chat(BaseNamespace):
        pass

    socketio_manage(sio, {"/chat": Chat})
    client = sio.test_client(app)
    client.connect("/chat")
    with caplog.at_level(logging.INFO, logger=LIBRARY):
        for _ in range(100):
            client.emit("two")
            client.emit("nosuch", namespace="/chat")  # (no_such_method, from the compat layer)
        client.disconnect()
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert 1 <= len(tracebacks) <= droplog.BURST
    lines = [r.getMessage() for r in caplog.records if client.sid in r.getMessage()]
    assert len(lines) <= droplog.BURST + 3, lines
    assert any("more lines about dropped input or failed handlers were not logged" in line
               for line in lines)


def test_counts_of_unlogged_errors_are_said_at_their_level(make_app, caplog):
    """An app logging at WARNING sees that ERROR lines went unlogged (the
    notice and the count were at INFO: it saw 5 tracebacks, then nothing)."""
    from flask_sio09 import droplog

    app, sio = make_app()
    sio.on("two")(lambda a, b: a + b)
    client = sio.test_client(app)
    with caplog.at_level(logging.WARNING, logger=LIBRARY):
        for _ in range(30):
            client.emit("two")
        client.disconnect()
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert len([1 for level, _ in lines if level == "ERROR"]) == droplog.BURST + 2, lines
    assert ("ERROR", f"session {client.sid}: too many lines about dropped input or failed "
            f"handlers; none for {droplog.WINDOW:.0f} s") in lines
    assert ("ERROR", f"session {client.sid}: {30 - droplog.BURST} more lines about dropped "
            "input or failed handlers were not logged") in lines


def test_new_sessions_cannot_get_round_the_limit_but_each_gets_its_first_line(
        make_app, caplog):
    # a client that makes a session for every few bad packets: each session's
    # first line goes out, the rest of all sessions' lines share one limit
    from flask_sio09 import droplog

    app, sio = make_app()
    with caplog.at_level(logging.INFO, logger=LIBRARY):
        clients = [sio.test_client(app) for _ in range(100)]
        for client in clients:
            session = client.server.get_session(client.sid)
            for _ in range(7):
                client.server.receive(session, "4:::{")
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    for client in clients:
        assert any(client.sid in line and "bad packet dropped" in line for line in lines)
    assert len(lines) <= 100 + droplog.PROCESS_BURST + 100 + 1, len(lines)
    assert any(line.startswith("all sessions: too many lines") for line in lines)


def test_the_count_of_a_flood_that_stopped_is_said_once_its_window_is_over(
        caplog, monkeypatch):
    from flask_sio09 import droplog

    clock = [1000.0]
    monkeypatch.setattr(droplog.time, "monotonic", lambda: clock[0])
    with caplog.at_level(logging.INFO, logger=LIBRARY):
        for i in range(30):
            droplog.log_refused("bad origin", "handshake refused: bad origin %r", i)
        droplog.report_expired()  # (the window is not over: nothing yet)
        clock[0] += droplog.WINDOW
        droplog.report_expired()
        droplog.report_expired()
    lines = [r.getMessage() for r in caplog.records]
    assert lines.count("requests of kind 'bad origin': "
                       f"{30 - droplog.BURST} more lines about dropped input or failed "
                       "handlers were not logged") == 1


def test_threads_dropping_input_at_once_say_that_the_lines_stop_once(make_app, caplog):
    import threading

    app, sio = make_app()
    client = sio.test_client(app)
    session = client.server.get_session(client.sid)
    start = threading.Barrier(20)

    def flood():
        start.wait(10)
        for _ in range(20):
            client.server.receive(session, "4:::{")

    with caplog.at_level(logging.INFO, logger=LIBRARY):
        threads = [threading.Thread(target=flood) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    notices = [r for r in caplog.records
               if "too many lines about dropped input or failed handlers" in r.getMessage()]
    assert len(notices) == 1

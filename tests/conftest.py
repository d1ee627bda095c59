"""Shared fixtures: live servers in subprocesses and a headless Chromium.

``live_server(kind, **options)`` starts ``tests/apps/e2e_app.py`` (or, with
``app="example_app"``, another module that has ``app`` and ``sio``) in a subprocess on
a free 127.0.0.1 port, one of three ways:

- ``"sio_run"``: ``python -m tests.apps.run_sio PORT [MODULE]`` (``sio.run``),
- ``"flask"``: ``flask --app MODULE run`` (threaded Werkzeug),
- ``"gunicorn"``: ``gunicorn -k gthread --threads 50 -w 1 MODULE:app``.

The SocketIO options reach the app as ``SIO09_TEST_*`` environment variables (see the
app's docstring); ``tls=tls_files`` serves over TLS (``https://``) with a certificate
of a CA made for the run. The server's output goes to a log file, readiness is an HTTP poll
with a generous deadline, and the fixture stops exactly the process it started, by
PID. Servers with the same kind and options are shared for the whole session unless
``fresh=True`` is given; the tail of every log a failing test used is attached to its
report.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import requests


def pytest_collection_modifyitems(config, items):
    """Tests marked ``patches_internals`` replace methods of classes that the
    compiled build (flask_sio09.native) makes native, which allows no such
    patching: they run when the sources run, as in ``make test``'s second,
    FLASK_SIO09_PURE=1 pass over the unit suite, and the compiled pass skips them."""
    from flask_sio09 import native

    if not native.in_use():
        return
    skip = pytest.mark.skip(reason="patches methods of a compiled class; runs in the "
                                   "FLASK_SIO09_PURE=1 pass")
    for item in items:
        if item.get_closest_marker("patches_internals"):
            item.add_marker(skip)

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
VENDOR_JS = REPO_ROOT / "vendor" / "socket.io.js"

READY_DEADLINE = 30.0
STOP_DEADLINE = 15.0
POLL_INTERVAL = 0.05

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# gunicorn_preload: the app is made in gunicorn's master before the fork
SERVER_KINDS = ("sio_run", "flask", "gunicorn", "gunicorn_preload")
#: gunicorn's --threads in the servers the tests start
GUNICORN_THREADS = 50
E2E_APP = "tests.apps.e2e_app"

_SERVERS_USED = pytest.StashKey[list]()


# ---------------------------------------------------------------------------
# waiting
# ---------------------------------------------------------------------------


def node_with(modules: Path, package: str) -> dict:
    """The ``node`` executable and an environment whose NODE_PATH is
    ``modules``, which must hold ``package`` (``make vendor`` installs them):
    a missing one fails the test rather than skipping it."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is missing: install Node.js (Debian: apt-get install nodejs npm)")
    if not (modules / package / "package.json").is_file():
        pytest.fail(f"{modules.relative_to(REPO_ROOT)}/{package} is missing: run `make vendor`")
    return {"node": node, "env": {**os.environ, "NODE_PATH": str(modules)}}


def wait_until(
    predicate: Callable[[], object],
    timeout: float = 30.0,
    interval: float = POLL_INTERVAL,
    message: str | Callable[[], str] = "condition",
):
    """Poll ``predicate`` until it returns something truthy and return that value.

    Raises ``AssertionError`` (with ``message``) when ``timeout`` seconds pass first.
    Every call is bounded; this is the only way tests wait for something to happen.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {text}")
        time.sleep(interval)


# ---------------------------------------------------------------------------
# live servers
# ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc: subprocess.Popen | None) -> None:
    """Terminate a process a fixture started (by PID), then kill it if it lingers."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(STOP_DEADLINE)
    except subprocess.TimeoutExpired:
        # Fixtures start processes that lead their own session (start_new_session),
        # so the group id is the PID: a gunicorn worker left behind by a master
        # that had to be killed is in that group and nothing else is.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
        proc.wait(STOP_DEADLINE)


def options_to_env(options: dict) -> dict[str, str]:
    env = {}
    for name, value in options.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            value = ",".join(value)
        elif value is True:
            value = "1"
        elif value is False:
            value = "0"
        env["SIO09_TEST_" + name.upper()] = str(value)
    return env


@dataclass(frozen=True)
class TLSFiles:
    """PEM files for a server over TLS, and the CA that signed its certificate."""

    cert: str
    key: str
    ca: str


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory) -> TLSFiles:
    """A certificate for 127.0.0.1 and localhost, from a CA made for the run."""
    import trustme

    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    files = TLSFiles(str(folder / "cert.pem"), str(folder / "key.pem"), str(folder / "ca.pem"))
    issued.cert_chain_pems[0].write_to_path(files.cert)
    for blob in issued.cert_chain_pems[1:]:
        blob.write_to_path(files.cert, append=True)
    issued.private_key_pem.write_to_path(files.key)
    ca.cert_pem.write_to_path(files.ca)
    return files


class LiveServer:
    """One server process running the end-to-end app."""

    def __init__(self, kind: str, options: dict, log_path: Path, app: str = E2E_APP):
        if kind not in SERVER_KINDS:
            raise ValueError(f"unknown server kind {kind!r}; one of {SERVER_KINDS}")
        self.kind = kind
        self.app = app
        # The end-to-end app has a cheap route for readiness; any app answers "/".
        self.ready_path = "/healthz" if app == E2E_APP else "/"
        self.options = dict(options)
        #: gunicorn's -w (not a SocketIO option)
        self.workers = int(self.options.pop("gunicorn_workers", 1))
        #: the process's open-file limit, soft and hard (not a SocketIO option)
        self.open_files = self.options.pop("open_files", None)
        #: serve over TLS: a ``TLSFiles`` (not a SocketIO option)
        self.tls = self.options.pop("tls", None)
        self.log_path = log_path
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self._log_file = None

    # -- addresses ----------------------------------------------------------

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://{self.host}"

    @property
    def verify(self) -> str | bool:
        """What ``requests`` checks the server's certificate with."""
        return self.tls.ca if self.tls else True

    def __repr__(self) -> str:
        return f"<LiveServer {self.kind} {self.app} {self.url} pid={self.proc and self.proc.pid}>"

    # -- process ------------------------------------------------------------

    def command(self, port: int) -> list[str]:
        if self.kind == "sio_run":
            tls = [self.tls.cert, self.tls.key] if self.tls else []
            return [sys.executable, "-m", "tests.apps.run_sio", str(port), self.app, *tls]
        if self.kind == "flask":
            tls = ["--cert", self.tls.cert, "--key", self.tls.key] if self.tls else []
            return [
                sys.executable, "-m", "flask", "--app", self.app, "run",
                "--host", "127.0.0.1", "--port", str(port),
                "--with-threads", "--no-reload", "--no-debugger", *tls,
            ]
        preload = ["--preload"] if self.kind == "gunicorn_preload" else []
        tls = ["--certfile", self.tls.cert, "--keyfile", self.tls.key] if self.tls else []
        return [
            sys.executable, "-m", "gunicorn",
            "-k", "gthread", "--threads", str(GUNICORN_THREADS), "-w", str(self.workers),
            *preload, *tls,
            "-b", f"127.0.0.1:{port}",
            "--graceful-timeout", "5",
            "--access-logfile", "-",
            f"{self.app}:app",
        ]

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIO09_TEST_")}
        python_path = [str(REPO_ROOT)]
        if env.get("PYTHONPATH"):
            python_path.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(python_path)
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("FLASK_APP", None)
        # The library's INFO lines go to the log file too, unless a test says logger=False.
        env["SIO09_TEST_LOGGER"] = "1"
        env.update(options_to_env(self.options))
        return env

    def start(self, attempts: int = 3) -> "LiveServer":
        """Start on a free port; retry on another port if the process dies at once."""
        last_error = None
        for _ in range(attempts):
            self.port = free_port()
            self._log_file = open(self.log_path, "ab")
            self._log_file.write(
                f"=== {self.kind} on port {self.port}: {' '.join(self.command(self.port))}\n"
                f"=== options {self.options}\n".encode()
            )
            self._log_file.flush()
            self.proc = subprocess.Popen(
                self.command(self.port),
                cwd=REPO_ROOT,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=self._child_setup,
            )
            try:
                self.wait_ready()
                return self
            except AssertionError as exc:
                last_error = exc
                self.stop()
                if "exited" not in str(exc):
                    break
        raise AssertionError(f"{self.kind} server never became ready: {last_error}\n{self.log_tail()}")

    def _child_setup(self) -> None:
        """In the server's process, before it runs: the tests stop servers
        with SIGINT as a terminal's Ctrl-C would, but a test run started in
        the background without job control (``cmd &`` in a script, some CI
        runners) has SIGINT and SIGQUIT ignored, which a child inherits, and
        Python then never raises KeyboardInterrupt: restore them."""
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGQUIT, signal.SIG_DFL)
        if self.open_files:
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.open_files, self.open_files))

    def wait_ready(self, timeout: float = READY_DEADLINE) -> None:
        def answered():
            if self.proc.poll() is not None:
                raise AssertionError(f"server process exited with {self.proc.returncode}")
            try:
                return requests.get(self.url + self.ready_path, timeout=2,
                                    verify=self.verify).status_code == 200
            except requests.RequestException:
                return False

        wait_until(answered, timeout=timeout, message=f"{self!r} to answer GET {self.ready_path}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """Terminate the process this object started (by PID), then kill it if needed."""
        proc, self.proc = self.proc, None
        stop_process(proc)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    # -- observation --------------------------------------------------------

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def events(self, sid: str | None = None) -> list[dict]:
        params = {"sid": sid} if sid else None
        response = requests.get(self.url + "/events", params=params, timeout=10,
                                verify=self.verify)
        response.raise_for_status()
        return response.json()

    def wait_events(
        self,
        predicate: Callable[[list[dict]], object],
        sid: str | None = None,
        timeout: float = 30.0,
        what: str = "server events",
    ) -> list[dict]:
        """Poll ``/events`` until ``predicate(events)`` holds; return the events."""
        seen: list[dict] = []

        def check():
            seen[:] = self.events(sid)
            return predicate(seen)

        wait_until(check, timeout=timeout, message=lambda: f"{what}; last seen {seen}")
        return list(seen)

    def server_emit(self, event: str, *args, to=None, namespace: str = "", count=None):
        body = {"event": event, "args": list(args), "to": to, "namespace": namespace}
        if count is not None:
            body["count"] = count
        response = requests.post(self.url + "/server_emit", json=body, timeout=10,
                                 verify=self.verify)
        response.raise_for_status()


# ---------------------------------------------------------------------------
# redis-server
# ---------------------------------------------------------------------------

REDIS_SERVER = "/usr/bin/redis-server"


class RedisServer:
    """A redis-server on a free 127.0.0.1 port, without persistence, started
    and stopped (by PID) by the test that owns it."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        binary = REDIS_SERVER if os.path.exists(REDIS_SERVER) else "redis-server"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdin=subprocess.DEVNULL, stdout=open(self.directory / "redis.log", "ab"),
            stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(self.ping, timeout=READY_DEADLINE, message=f"redis-server on {self.port}")
        return self

    def ping(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError("redis-server exited (is it installed? make system)")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        stop_process(proc)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """One redis-server for the session (tests isolate themselves by channel)."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def fresh_redis(tmp_path):
    """Factory of redis-servers owned by one test (to stop or restart them)."""
    started: list[RedisServer] = []

    def factory() -> RedisServer:
        server = RedisServer(tmp_path / f"redis-{len(started)}").start()
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def _server_pool(tmp_path_factory):
    pool: dict = {}
    yield pool
    for server in pool.values():
        server.stop()


@pytest.fixture
def live_server(request, _server_pool, tmp_path_factory, tmp_path):
    """Factory: ``live_server(kind="sio_run", fresh=False, app=E2E_APP, **options)``."""
    started: list[LiveServer] = []
    used = request.node.stash.setdefault(_SERVERS_USED, [])

    def factory(kind: str = "sio_run", fresh: bool = False, app: str = E2E_APP, **options) -> LiveServer:
        if fresh:
            server = LiveServer(kind, options, tmp_path / f"server-{kind}-{len(started)}.log", app)
            started.append(server)
            used.append(server)
            return server.start()
        key = (kind, app, tuple(sorted((k, repr(v)) for k, v in options.items())))
        server = _server_pool.get(key)
        if server is None or not server.alive():
            if server is not None:
                server.stop()
            log_dir = tmp_path_factory.mktemp(f"server-{kind}")
            server = LiveServer(kind, options, log_dir / "server.log", app)
            _server_pool[key] = server
            server.start()
        used.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for server in item.stash.get(_SERVERS_USED, []):
            report.sections.append(
                (f"server log {server.kind} {server.log_path}", server.log_tail())
            )


@pytest.fixture(autouse=True)
def _fresh_droplog():
    """Each test starts with the limits on log lines about dropped input
    unspent (``flask_sio09.droplog``): a test that looks for such a line must
    not find its window spent by the tests before it."""
    from flask_sio09 import droplog

    droplog.reset()


# ---------------------------------------------------------------------------
# the browser
# ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless, driven by Playwright (never ``playwright install``)."""
    # missing, the browser tests fail rather than skip: `make test` installs
    # both, and a run that skipped them would pass without testing a browser
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is not installed (Debian package chromium): run `make system`")
    from playwright import sync_api

    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def vendor_client() -> Path:
    """The socket.io-client 0.9.16 build fetched by ``make vendor`` (git-ignored)."""
    if not VENDOR_JS.is_file():
        pytest.fail(f"{VENDOR_JS.relative_to(REPO_ROOT)} is missing: run `make vendor`")
    return VENDOR_JS


@pytest.fixture
def new_page(browser, vendor_client):
    """Factory: ``new_page(server)`` opens the test page of ``server`` in a fresh context."""
    contexts = []

    def factory(server: LiveServer):
        context = browser.new_context()
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(server.url + "/")
        page.wait_for_function("() => window.T && window.T.ready === true", polling=50)
        return page

    yield factory
    for context in contexts:
        context.close()

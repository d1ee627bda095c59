"""The compiled hot-path modules (flask_sio09.native): used only when built from
the sources beside them, and the same results as those sources.

``make test`` builds them and sets FLASK_SIO09_EXPECT_NATIVE=1, so that a build
that silently fell back to the pure-Python code fails here; it then runs the
unit suite once more with FLASK_SIO09_PURE=1, which tests the sources.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flask_sio09
from flask_sio09 import native, packet, wsframe

PACKAGE_DIR = Path(flask_sio09.__file__).resolve().parent
WHICH_FILES = "import flask_sio09, sys; print(flask_sio09.packet.__file__); " \
              "print(flask_sio09.wsframe.__file__); print(flask_sio09.native.status())"


def _from_source(name):
    """A compiled module's source loaded as a module of its own (packet.py and
    wsframe.py import only the standard library)."""
    spec = importlib.util.spec_from_file_location(f"source_{name}", PACKAGE_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SOURCE_PACKET = _from_source("packet")
SOURCE_WSFRAME = _from_source("wsframe")


def _run(code, package_parent, **env):
    environ = {k: v for k, v in os.environ.items() if k != native.PURE_ENV}
    environ.update(env, PYTHONPATH=str(package_parent))
    # (run from there: ``-c`` puts the current folder first on the path)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=environ, cwd=package_parent, check=True)


def test_the_build_is_in_use_when_make_test_expects_it():
    if os.environ.get("FLASK_SIO09_EXPECT_NATIVE") != "1":
        pytest.skip("FLASK_SIO09_EXPECT_NATIVE=1 is set by make test, after the build")
    if os.environ.get(native.PURE_ENV):
        pytest.skip("this run tests the sources (FLASK_SIO09_PURE)")
    assert native.in_use(), native.status()
    assert not packet.__file__.endswith(".py")
    assert not wsframe.__file__.endswith(".py")


def test_in_use_says_what_was_imported():
    assert native.in_use() == (not packet.__file__.endswith(".py"))
    assert native.in_use() == (not wsframe.__file__.endswith(".py"))


def test_pure_env_imports_the_sources():
    out = _run(WHICH_FILES, PACKAGE_DIR.parent, FLASK_SIO09_PURE="1").stdout.split("\n")
    assert out[0] == str(PACKAGE_DIR / "packet.py")
    assert out[1] == str(PACKAGE_DIR / "wsframe.py")
    assert out[2].startswith("pure Python")


def test_a_changed_source_makes_every_compiled_module_fall_back(tmp_path):
    if native._built_here() is not True:
        pytest.skip("nothing compiled here (python -m flask_sio09.build_native)")
    copy = tmp_path / "flask_sio09"
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    fresh = _run(WHICH_FILES, tmp_path).stdout.split("\n")
    assert fresh[2] == "compiled with mypyc, in use"
    assert fresh[0].startswith(str(copy / "packet.")) and not fresh[0].endswith(".py")
    with open(copy / "packet.py", "a", encoding="utf-8") as source:
        source.write("\n# changed after the build\n")
    stale = _run(WHICH_FILES, tmp_path)
    out = stale.stdout.split("\n")
    # wsframe.py did not change, but runs from source too: all or none
    assert out[:2] == [str(copy / "packet.py"), str(copy / "wsframe.py")]
    assert out[2] == "pure Python (the sources changed since the build)"
    assert "RuntimeWarning" in stale.stderr and "build_native" in stale.stderr


@pytest.mark.parametrize("lost", ["_native__mypyc", "hub", "packet"])
def test_an_incomplete_build_makes_every_compiled_module_fall_back(tmp_path, lost):
    """A lost extension (the group's shared library, or one module's) must not
    break the import, nor leave a mix of compiled and source modules."""
    if native._built_here() is not True:
        pytest.skip("nothing compiled here (python -m flask_sio09.build_native)")
    copy = tmp_path / "flask_sio09"
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    for path in copy.glob(f"{lost}.*"):
        if path.suffix == ".so":
            path.unlink()
    code = WHICH_FILES + "; import flask_sio09.hub as h; print(h.__file__)"
    done = _run(code, tmp_path)
    out = done.stdout.split("\n")
    assert out[:2] == [str(copy / "packet.py"), str(copy / "wsframe.py")]
    assert out[2] == "pure Python (an incomplete build: extension modules are missing)"
    assert out[3] == str(copy / "hub.py")
    assert "RuntimeWarning" in done.stderr
    # and the way out works: clean, then the package imports as plain Python
    cleaned = _run("import flask_sio09.build_native as b; b.main(['clean'])", tmp_path)
    assert "removed _native.json" in cleaned.stdout
    assert not [p for p in copy.iterdir() if p.suffix == ".so"]
    assert _run(WHICH_FILES, tmp_path).stdout.split("\n")[2] == "pure Python (not built)"


# --- the compiled code gives what its source gives ---------------------------

def _outcome(fn, *args):
    try:
        return ("ok", fn(*args))
    except Exception as exc:  # the same exception type, message and cause
        return (type(exc).__name__, str(exc), type(exc.__cause__).__name__,
                exc.__suppress_context__)


PACKET_CHARS = st.one_of(st.sampled_from("0123456789:+[]{}\",\\ nameargs\ufffd"),
                         st.characters())
PACKET_TEXT = st.one_of(
    st.text(PACKET_CHARS, max_size=60),
    st.builds(lambda t, rest: f"{t}:{rest}", st.sampled_from("0123456789"),
              st.text(PACKET_CHARS, max_size=60)))


@given(PACKET_TEXT)
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_decoding_matches_the_source(text):
    for name in ("decode", "decode_event", "split_payload", "decode_payload"):
        assert _outcome(getattr(packet, name), text) == \
            _outcome(getattr(SOURCE_PACKET, name), text), name


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                    | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                    max_leaves=8)
ANYTHING = st.one_of(JSON, st.binary(max_size=4), st.integers(-3, 10 ** 16),
                     st.sampled_from([float("nan"), object, (1, 2)]))


@given(ack_id=ANYTHING, args=st.one_of(st.lists(JSON, max_size=3), ANYTHING),
       endpoint=st.one_of(st.just(""), st.text(max_size=6), ANYTHING))
@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_encoding_matches_the_source(ack_id, args, endpoint):
    assert _outcome(packet.encode_ack, ack_id, args, endpoint) == \
        _outcome(SOURCE_PACKET.encode_ack, ack_id, args, endpoint)
    event = {"type": "event", "name": endpoint, "args": args, "endpoint": endpoint}
    for value in (event, {"type": "ack", "ackId": ack_id, "args": args},
                  {"type": "message", "data": args, "id": ack_id}, ack_id, [event]):
        assert _outcome(packet.encode, value) == _outcome(SOURCE_PACKET.encode, value)
        assert _outcome(packet.encode_payload, value) == \
            _outcome(SOURCE_PACKET.encode_payload, value)


def test_framing_takes_tuples_as_the_source_does():
    assert packet.frame(("1::", "2::")) == SOURCE_PACKET.frame(("1::", "2::"))
    assert wsframe.encode_texts(("a", "b")) == SOURCE_WSFRAME.encode_texts(("a", "b"))


def _frames(reader_class, chunks, limit):
    reader = reader_class(limit)
    events = []
    for chunk in chunks:
        try:
            events.extend(reader.feed(chunk))
        except Exception as exc:  # WebSocketError: its code, message, events, cause
            return events, (getattr(exc, "code", None), str(exc),
                            getattr(exc, "events", None), exc.__suppress_context__)
    return events, None


def _frame(opcode, payload, fin, mask):
    head = bytes([(0x80 if fin else 0) | opcode])
    length = len(payload)
    head += bytes([0x80 | length]) if length < 126 else \
        bytes([0x80 | 126]) + length.to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


FRAMES = st.lists(st.builds(_frame, st.sampled_from([0, 1, 2, 8, 9, 10, 3, 0xB]),
                            st.one_of(st.binary(max_size=140),
                                      st.text(max_size=40).map(str.encode)),
                            st.booleans(), st.binary(min_size=4, max_size=4)),
                  max_size=5).map(b"".join)


@given(st.one_of(FRAMES, st.binary(max_size=200)), st.lists(st.integers(1, 60), max_size=6),
       st.sampled_from([16, 100, 1 << 20]))
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_frame_reading_matches_the_source(data, cuts, limit):
    chunks, pos = [], 0
    for cut in cuts:
        chunks.append(data[pos:pos + cut])
        pos += cut
    chunks.append(data[pos:])
    assert _frames(wsframe.FrameReader, chunks, limit) == \
        _frames(SOURCE_WSFRAME.FrameReader, chunks, limit)


@given(st.lists(st.text(max_size=300), max_size=4), st.integers(900, 1015),
       st.text(max_size=20))
@settings(max_examples=300, deadline=None)
def test_frame_writing_matches_the_source(texts, code, reason):
    assert wsframe.encode_texts(texts) == SOURCE_WSFRAME.encode_texts(texts)
    for text in texts:
        assert wsframe.encode_text(text) == SOURCE_WSFRAME.encode_text(text)
    assert _outcome(wsframe.encode_close, code, reason) == \
        _outcome(SOURCE_WSFRAME.encode_close, code, reason)


def test_the_makefile_rebuilds_when_any_compiled_module_changes():
    """make native's prerequisites come from the MODULES line of native.py:
    a module added there but missed by make would stay stale (and run as
    Python) after an edit."""
    if shutil.which("make") is None or not (PACKAGE_DIR.parent / "Makefile").exists():
        pytest.skip("no make, or the package is not imported from a checkout")
    database = subprocess.run(["make", "-p", "-n", "-q", "native"], cwd=PACKAGE_DIR.parent,
                              capture_output=True, text=True, timeout=60).stdout
    lines = [line for line in database.splitlines() if line.startswith("NATIVE_MODULES := ")]
    assert lines == ["NATIVE_MODULES := " + " ".join(native.MODULES)]

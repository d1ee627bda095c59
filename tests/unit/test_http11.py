"""The strict request-head parser of kept connections (flask_sio09/http11.py):
what it accepts, and the status it answers to everything else."""

from __future__ import annotations

import pytest

from flask_sio09.http11 import (MAX_HEAD_BYTES, MAX_HEADER_LINE, MAX_HEADERS, MAX_REQUEST_LINE,
                                MEMO_BLOCK_CHARS, MEMO_BLOCKS, HeadMemo, HTTPError, parse_head)

POLL = b"GET /socket.io/1/xhr-polling/abc?t=1 HTTP/1.1\r\nHost: h\r\n\r\n"


def test_a_poll_get():
    head = parse_head(POLL)
    assert head is not None
    assert (head.method, head.target, head.version) == \
        ("GET", "/socket.io/1/xhr-polling/abc?t=1", "HTTP/1.1")
    assert (head.path, head.query) == ("/socket.io/1/xhr-polling/abc", "t=1")
    assert head.size == len(POLL)
    assert head.keep_alive and head.content_length == 0 and not head.chunked


def test_the_head_ends_at_its_blank_line_and_the_rest_is_left():
    data = POLL + b"POST / HTTP/1.1\r\n"
    head = parse_head(data)
    assert head is not None and head.size == len(POLL)


def test_headers_are_lower_cased_and_repeats_joined():
    head = parse_head(b"GET / HTTP/1.1\r\nHost: h\r\nX-A:  1 \r\nx-a:2\r\n"
                      b"Origin: http://o\r\n\r\n")
    assert head is not None
    assert head.get("x-a") == "1,2"
    assert head.get("origin") == "http://o"
    assert head.get("missing") is None
    assert ("x-a", "1") in head.headers


@pytest.mark.parametrize("extra, keep_alive", [
    (b"", True),
    (b"Connection: close\r\n", False),
    (b"Connection: keep-alive, Close\r\n", False),
    (b"Connection: keep-alive\r\n", True),
])
def test_keep_alive_follows_the_connection_header(extra, keep_alive):
    head = parse_head(b"GET / HTTP/1.1\r\nHost: h\r\n" + extra + b"\r\n")
    assert head is not None and head.keep_alive is keep_alive


def test_http_1_0_does_not_keep_the_connection_and_needs_no_host():
    head = parse_head(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert head is not None and not head.keep_alive


def test_content_length_and_chunked_framing():
    head = parse_head(b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\n\r\n")
    assert head is not None and head.content_length == 12
    head = parse_head(b"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert head is not None and head.chunked


def test_expect_100_continue():
    head = parse_head(b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n"
                      b"Expect: 100-Continue\r\n\r\n")
    assert head is not None and head.expect_continue


def test_options_star():
    head = parse_head(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")
    assert head is not None and head.target == "*"


@pytest.mark.parametrize("target, path, query", [
    ("http://h/socket.io/1/?t=1", "/socket.io/1/", "t=1"),
    ("HTTPS://h:8443/a%2Fb", "/a%2Fb", ""),
    ("http://h", "/", ""),
    ("http://h?x=1", "/", "x=1"),
])
def test_an_absolute_form_target_is_read_as_its_path(target, path, query):
    head = parse_head(f"GET {target} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
    assert head is not None and (head.path, head.query) == (path, query)


def test_one_empty_line_before_a_request_line_is_skipped_two_are_refused():
    """As gunicorn: one is skipped (RFC 9112 §2.2), two are a bad request line."""
    data = b"\r\nGET /a HTTP/1.1\r\nHost: h\r\n\r\nrest"
    head = parse_head(data)
    assert head is not None and head.target == "/a"
    assert data[head.size:] == b"rest"
    assert parse_head(b"\r\n") is None
    assert refusal(b"\r\n" + data) == "400"
    assert refusal(b"\r\n\r\n") == "400"  # (at once, not when a head has come)


@pytest.mark.parametrize("partial", [
    b"", b"G", b"GET / HTTP/1.1", b"GET / HTTP/1.1\r\n", b"GET / HTTP/1.1\r\nHost: h\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\n\r",
])
def test_an_incomplete_head_asks_for_more(partial):
    assert parse_head(partial) is None


@pytest.mark.parametrize("data, status", [
    # request lines
    (b"GET /\r\n\r\n", "400"),
    (b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n", "400"),
    (b"GET / HTTP/1.1 \r\nHost: h\r\n\r\n", "400"),
    (b"G\x00T / HTTP/1.1\r\nHost: h\r\n\r\n", "400"),
    (b"GET /\xff HTTP/1.1\r\nHost: h\r\n\r\n", "400"),
    (b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", "505"),
    (b"GET / HTTP/0.9\r\nHost: h\r\n\r\n", "505"),
    (b"GET / http/1.1\r\nHost: h\r\n\r\n", "400"),
    (b"GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n", "400"),
    (b"GET //h/ x HTTP/1.1\r\nHost: h\r\n\r\n", "400"),
    (b"\r\n" * 5 + b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", "400"),
    (b"\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", "400"),
    (b"GET * HTTP/1.1\r\nHost: h\r\n\r\n", "400"),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", "400"),  # a TLS hello
    # header lines
    (b"GET / HTTP/1.1\r\nHost : h\r\n\r\n", "400"),
    (b"GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n", "400"),
    (b"GET / HTTP/1.1\r\nHost: h\r\nNo colon\r\n\r\n", "400"),
    (b"GET / HTTP/1.1\r\nHost: h\r\n: empty name\r\n\r\n", "400"),
    (b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n", "400"),
    (b"GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", "400"),
    (b"GET / HTTP/1.1\r\nHost: h\r\nX: a\nb\r\n\r\n", "400"),
    (b"GET / HTTP/1.1\nHost: h\n\n", "400"),
    # Host
    (b"GET / HTTP/1.1\r\n\r\n", "400"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "400"),
    # body framing
    (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", "400"),
    (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", "400"),
    (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\n", "400"),
    (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1,1\r\n\r\n", "400"),
    (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n", "400"),
    (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \xd9\xa1\r\n\r\n", "400"),
    (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9999999999999999\r\n\r\n", "400"),
    (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n", "400"),
    (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "400"),
    (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "501"),
    (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", "400"),
    (b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n", "417"),
])
def test_hostile_or_broken_heads_are_refused(data, status):
    with pytest.raises(HTTPError) as refused:
        parse_head(data)
    assert refused.value.status.startswith(status)


@pytest.mark.parametrize("first", [b"\r\r\n", b" \r\n", b"GET /\r\n", b"GET / HTTP/1.1 x\r\n",
                                   b"GET / HTTP/1.1 \r\nHost: h\r\n"])
def test_a_bad_request_line_is_refused_before_the_head_is_complete(first):
    assert refusal(first) == "400"


def test_a_good_request_line_waits_for_the_rest_of_the_head():
    assert parse_head(b"GET / HTTP/1.1\r\nHost: h\r\n") is None


def test_a_bare_lf_is_refused_before_the_head_is_complete():
    with pytest.raises(HTTPError) as refused:
        parse_head(b"GET / HTTP/1.1\nHost: h\n")
    assert refused.value.status.startswith("400")


def test_an_endless_request_line_is_414_and_endless_headers_431():
    with pytest.raises(HTTPError) as refused:
        parse_head(b"GET /" + b"a" * MAX_HEAD_BYTES)
    assert refused.value.status.startswith("414")
    with pytest.raises(HTTPError) as refused:
        parse_head(b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"a" * MAX_HEAD_BYTES)
    assert refused.value.status.startswith("431")


def test_exactly_the_header_limit_is_accepted_one_more_is_431():
    lines = b"".join(b"X-%d: 1\r\n" % i for i in range(MAX_HEADERS - 1))
    assert parse_head(b"GET / HTTP/1.1\r\nHost: h\r\n" + lines + b"\r\n") is not None
    assert refusal(b"GET / HTTP/1.1\r\nHost: h\r\n" + lines + b"X: 1\r\n\r\n") == "431"


@pytest.mark.parametrize("line", [b"a", b":", b" ", b"a:"])
def test_too_many_header_lines_is_431_however_short_or_broken(line):
    """The count comes first, as for well-formed lines (gunicorn's order)."""
    assert refusal(b"GET / HTTP/1.1\r\n" + (line + b"\r\n") * 4 + b"\r\n",
                   max_headers=3) == "431"
    assert refusal(b"GET / HTTP/1.1\r\n" + (line + b"\r\n") * (MAX_HEADERS + 1)
                   + b"\r\n") == "431"


@pytest.mark.parametrize("char", [bytes([c]) for c in range(0x20) if c != 0x09] + [b"\x7f"])
def test_every_control_character_in_a_value_or_a_target_is_refused(char):
    assert refusal(b"GET / HTTP/1.1\r\nHost: h\r\nX: a" + char + b"b\r\n\r\n") == "400"
    assert refusal(b"GET / HTTP/1.1\r\nHost: h" + char + b"\r\n\r\n") == "400"
    assert refusal(b"GET /a" + char + b"b HTTP/1.1\r\nHost: h\r\n\r\n") == "400"


def test_a_header_line_over_the_limit_is_431_without_other_headers():
    field = b"X: " + b"a" * (MAX_HEADER_LINE - 2)  # one byte over
    assert refusal(b"GET / HTTP/1.0\r\n" + field + b"\r\n\r\n") == "431"
    assert parse_head(b"GET / HTTP/1.0\r\n" + field[:-1] + b"\r\n\r\n") is not None


@pytest.mark.parametrize("value, keep_alive", [
    ("x-close", True), ("closed", True), ("keep-alive,close", False), (" CLOSE ", False),
    ("upgrade, close", False), ("close-ish, keep-alive", True),
])
def test_only_the_close_token_ends_the_connection(value, keep_alive):
    head = parse_head(f"GET / HTTP/1.1\r\nHost: h\r\nConnection: {value}\r\n\r\n".encode())
    assert head is not None and head.keep_alive is keep_alive


def test_a_missing_host_is_named_before_a_repeated_content_length():
    with pytest.raises(HTTPError) as refused:
        parse_head(b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n")
    assert "Host" in str(refused.value)


def test_too_many_headers_is_431():
    lines = b"".join(b"X-%d: 1\r\n" % i for i in range(MAX_HEADERS + 1))
    with pytest.raises(HTTPError) as refused:
        parse_head(b"GET / HTTP/1.1\r\nHost: h\r\n" + lines + b"\r\n")
    assert refused.value.status.startswith("431")


def test_a_head_of_exactly_the_limit_is_accepted():
    data = b"GET / HTTP/1.1\r\nHost: h\r\n"
    for i in range(5):  # header lines under their own limit, up to the head's
        line = b"X-%d: " % i
        room = MAX_HEAD_BYTES - len(data) - len(line) - 4
        data += line + b"a" * min(4000, room) + b"\r\n"
    data += b"\r\n"
    assert len(data) == MAX_HEAD_BYTES
    head = parse_head(data)
    assert head is not None and head.size == MAX_HEAD_BYTES


@pytest.mark.parametrize("seed", range(20))
def test_random_bytes_never_crash_the_parser(seed):
    import random

    rng = random.Random(seed)
    data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
    for cut in (data, POLL[:rng.randrange(len(POLL))] + data, data + b"\r\n\r\n"):
        try:
            parse_head(cut)
        except HTTPError as refused:
            assert refused.status[:3] in {"400", "414", "417", "431", "501", "505"}


def refusal(data: bytes, **limits: int) -> str:
    with pytest.raises(HTTPError) as refused:
        parse_head(data, **limits)
    return refused.value.status[:3]


def test_the_line_limits_are_gunicorns():
    """A kept connection takes nothing a fresh one to gunicorn refuses: a
    request line over 4094 bytes, a header line over 8190."""
    line = b"GET /" + b"a" * (MAX_REQUEST_LINE - len(b"GET / HTTP/1.1")) + b" HTTP/1.1"
    assert len(line) == MAX_REQUEST_LINE
    assert parse_head(line + b"\r\nHost: h\r\n\r\n") is not None
    assert refusal(line.replace(b"GET /", b"GET /a") + b"\r\nHost: h\r\n\r\n") == "414"
    assert refusal(line.replace(b"GET /", b"GET /a")) == "414"  # (before the line ends)
    field = b"X: " + b"a" * (MAX_HEADER_LINE - 3)
    assert parse_head(b"GET / HTTP/1.1\r\nHost: h\r\n" + field + b"\r\n\r\n") is not None
    assert refusal(b"GET / HTTP/1.1\r\nHost: h\r\n" + field + b"a\r\n\r\n") == "431"


def test_a_request_line_of_exactly_the_limit_whose_lf_has_not_come_yet_waits_for_it():
    # else a client whose CR and LF arrive in two reads gets a 414 for a line
    # the limit allows
    line = b"GET /" + b"a" * (MAX_REQUEST_LINE - len(b"GET / HTTP/1.1")) + b" HTTP/1.1"
    assert len(line) == MAX_REQUEST_LINE
    assert parse_head(line + b"\r") is None
    head = parse_head(line + b"\r\nHost: h\r\n\r\n")
    assert head is not None and head.version == "HTTP/1.1"


def test_an_unterminated_head_of_exactly_max_head_bytes_is_431():
    # else a head that can never end within the limit is held (and the
    # client kept waiting) until the timeout instead of refused at once
    start = b"GET / HTTP/1.1\r\nHost: h\r\nX: "
    data = start + b"a" * (MAX_HEAD_BYTES - len(start))
    assert len(data) == MAX_HEAD_BYTES
    assert parse_head(data[:-1]) is None  # one byte short: it may still end
    assert refusal(data) == "431"


@pytest.mark.parametrize("version", [b"HTTP/1.2", b"HTTP/1.9"])
def test_http_1_x_other_than_1_0_and_1_1_is_505(version):
    # else a request of a version we do not speak is answered as HTTP/1.1
    assert refusal(b"GET / " + version + b"\r\nHost: h\r\n\r\n") == "505"


@pytest.mark.parametrize("line", [b"get / HTTP/1.1", b"Get / HTTP/1.1", b"GE / HTTP/1.1",
                                  b"G#T / HTTP/1.1", b"A" * 21 + b" / HTTP/1.1"])
def test_methods_gunicorn_refuses_are_refused(line):
    assert refusal(line + b"\r\nHost: h\r\n\r\n") == "400"


def test_one_host_at_most_in_http_1_0_too():
    assert refusal(b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n") == "400"
    assert parse_head(b"GET / HTTP/1.0\r\n\r\n") is not None


def test_a_fragment_is_no_part_of_the_path_or_query():
    head = parse_head(b"GET /echo?a=1#frag HTTP/1.1\r\nHost: h\r\n\r\n")
    assert (head.path, head.query, head.raw_target) == ("/echo", "a=1", "/echo?a=1#frag")
    head = parse_head(b"GET http://h/echo#x HTTP/1.1\r\nHost: h\r\n\r\n")
    assert (head.path, head.raw_target) == ("/echo", "http://h/echo#x")


def test_two_content_types_are_refused_as_gunicorn_does():
    assert refusal(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Type: a/b\r\n"
                   b"Content-Type: c/d\r\nContent-Length: 0\r\n\r\n") == "400"


# -- properties: any well-formed head is read as sent; a stray byte is refused --

from hypothesis import given, settings, strategies as st  # noqa: E402

_TOKEN_ALPHABET = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# a value's characters: visible ASCII, HTAB, space and latin-1's upper half
_VALUE_ALPHABET = st.sampled_from(
    [chr(c) for c in range(0x20, 0x7f)] + ["\t"] + [chr(c) for c in range(0x80, 0x100)])
_names = st.text(_TOKEN_ALPHABET, min_size=1, max_size=12).filter(
    lambda n: n.lower() not in {"host", "content-length", "transfer-encoding", "expect",
                                "content-type", "connection"})
_values = st.text(_VALUE_ALPHABET, max_size=30).map(lambda v: v.strip(" \t"))
_padding = st.sampled_from(["", " ", "\t", " \t "])


@st.composite
def _heads(draw):
    method = draw(st.sampled_from(["GET", "POST", "OPTIONS", "M-SEARCH"]))
    path = "/" + draw(st.text("abc/%.-_~0123456789", max_size=20))
    query = draw(st.text("abc=&%+0123456789", max_size=20))
    target = path + ("?" + query if query else "")
    fields = draw(st.lists(st.tuples(_names, _values, _padding, _padding), max_size=15))
    fields.insert(draw(st.integers(0, len(fields))), ("Host", "h", " ", ""))
    lines = [f"{method} {target} HTTP/1.1"] + [f"{n}:{before}{v}{after}"
                                               for n, v, before, after in fields]
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return data, method, target, path, query, [(n.lower(), v) for n, v, _, _ in fields]


@settings(max_examples=300, deadline=None)
@given(_heads())
def test_any_well_formed_head_is_read_as_sent(case):
    data, method, target, path, query, headers = case
    head = parse_head(data + b"next")
    assert head is not None
    assert (head.method, head.target, head.raw_target) == (method, target, target)
    assert (head.path, head.query, head.version) == (path, query, "HTTP/1.1")
    assert head.headers == headers and head.size == len(data)
    for name, _ in headers:
        assert head.get(name) == ",".join(v for n, v in headers if n == name)
    assert head.keep_alive and head.content_length == 0 and not head.chunked


@settings(max_examples=300, deadline=None)
@given(_heads(), st.data())
def test_a_stray_control_character_cr_or_lf_anywhere_is_refused(case, data):
    raw = case[0]
    head_end = len(raw) - 4
    at = data.draw(st.integers(0, head_end - 1))
    stray = data.draw(st.sampled_from([bytes([c]) for c in range(0x20) if c != 0x09] + [b"\x7f"]))
    if raw[at:at + 2] == b"\r\n" or raw[at - 1:at + 1] == b"\r\n":
        at = 1  # (inside the method: no line end to join with)
    broken = raw[:at] + stray + raw[at:]
    if stray == b"\r" and broken[at + 1:at + 2] == b"\n":
        return  # (a line end made, not a stray CR)
    with pytest.raises(HTTPError) as refused:
        parse_head(broken)
    assert refused.value.status.startswith("400")


# -- the memo of header blocks (a kept connection's repeated headers) ---------

def _outcome(data: bytes, memo: HeadMemo | None = None, **limits):
    """What parse_head makes of ``data``: the head's fields, or the refusal."""
    try:
        head = parse_head(data, memo=memo, **limits)
    except HTTPError as exc:
        return ("refused", exc.status, str(exc))
    if head is None:
        return None
    return (head.method, head.target, head.raw_target, head.version, head.path, head.query,
            head.headers, {name: head.get(name) for name, _ in head.headers}, head.size,
            head.content_length, head.chunked, head.keep_alive, head.expect_continue)


BLOCK = b"Host: h\r\nOrigin: http://o\r\nContent-Length: 3\r\n"


def test_a_known_block_is_taken_from_the_memo_and_read_the_same():
    memo = HeadMemo()
    first = parse_head(b"POST /a?t=1 HTTP/1.1\r\n" + BLOCK + b"\r\nabc", memo=memo)
    second = parse_head(b"POST /b?t=2 HTTP/1.1\r\n" + BLOCK + b"\r\nabc", memo=memo)
    assert first is not None and second is not None
    assert first.block is not None and second.block is first.block
    assert len(memo.blocks) == 1
    assert (second.target, second.path, second.query) == ("/b?t=2", "/b", "t=2")
    assert second.content_length == 3 and second.get("origin") == "http://o"
    assert _outcome(b"POST /b?t=2 HTTP/1.1\r\n" + BLOCK + b"\r\n", memo) == \
        _outcome(b"POST /b?t=2 HTTP/1.1\r\n" + BLOCK + b"\r\n")


def test_a_known_block_under_another_version_is_read_again():
    memo = HeadMemo()
    block = b"Host: h\r\nExpect: 100-continue\r\n"
    parse_head(b"GET / HTTP/1.1\r\n" + block + b"\r\n", memo=memo)
    old = parse_head(b"GET / HTTP/1.0\r\n" + block + b"\r\n", memo=memo)
    assert old is not None and not old.keep_alive and not old.expect_continue
    again = parse_head(b"GET / HTTP/1.1\r\n" + block + b"\r\n", memo=memo)
    assert again is not None and again.keep_alive and again.expect_continue


@pytest.mark.parametrize("line, status", [
    (b"get / HTTP/1.1", "400"), (b"GET / HTTP/2.0", "505"), (b"GET x HTTP/1.1", "400"),
    (b"GET / HTTP/1.1 x", "400"), (b"G\x01T / HTTP/1.1", "400")])
def test_a_known_block_still_has_its_request_line_checked(line, status):
    memo = HeadMemo()
    assert parse_head(b"GET / HTTP/1.1\r\n" + BLOCK + b"\r\n", memo=memo) is not None
    with pytest.raises(HTTPError) as refused:
        parse_head(line + b"\r\n" + BLOCK + b"\r\n", memo=memo)
    assert refused.value.status.startswith(status)
    assert _outcome(line + b"\r\n" + BLOCK + b"\r\n", memo) == \
        _outcome(line + b"\r\n" + BLOCK + b"\r\n")


@pytest.mark.parametrize("limits", [{}, {"max_line": 30}])
def test_a_known_block_does_not_let_a_request_line_past_its_limit(limits):
    memo = HeadMemo()
    assert parse_head(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", memo=memo, **limits) is not None
    long_line = b"GET /" + b"a" * limits.get("max_line", MAX_REQUEST_LINE) + b" HTTP/1.1"
    with pytest.raises(HTTPError) as refused:
        parse_head(long_line + b"\r\nHost: h\r\n\r\n", memo=memo, **limits)
    assert refused.value.status.startswith("414")


def test_refused_and_long_blocks_are_not_remembered_and_the_memo_stays_small():
    memo = HeadMemo()
    with pytest.raises(HTTPError):
        parse_head(b"GET / HTTP/1.1\r\nHost: h\r\nHost: i\r\n\r\n", memo=memo)
    with pytest.raises(HTTPError):
        parse_head(b"GET / HTTP/1.1\r\nContent-Length: x\r\nHost: h\r\n\r\n", memo=memo)
    assert not memo.blocks
    long_value = b"v" * MEMO_BLOCK_CHARS
    assert parse_head(b"GET / HTTP/1.1\r\nHost: h\r\nX: " + long_value + b"\r\n\r\n",
                      memo=memo) is not None
    assert not memo.blocks
    for n in range(3 * MEMO_BLOCKS):
        head = parse_head(f"GET / HTTP/1.1\r\nHost: h{n}\r\n\r\n".encode(), memo=memo)
        assert head is not None and head.get("host") == f"h{n}"
        assert 1 <= len(memo.blocks) <= MEMO_BLOCKS


def test_a_known_block_is_checked_against_the_limits_once():
    """The memo is one connection's, used with the same limits: a block that
    passed them once is not measured again (the limits are those it passed)."""
    memo = HeadMemo()
    block = b"Host: h\r\nA: 1\r\nB: 2\r\n"
    assert parse_head(b"GET / HTTP/1.1\r\n" + block + b"\r\n", memo=memo, max_headers=3)
    with pytest.raises(HTTPError) as refused:
        parse_head(b"GET / HTTP/1.1\r\n" + block + b"\r\n", max_headers=2)
    assert refused.value.status.startswith("431")


_LINES = st.sampled_from([
    b"GET /socket.io/1/xhr-polling/s?t=1 HTTP/1.1", b"POST /socket.io/1/xhr-polling/s?t=2 HTTP/1.1",
    b"GET / HTTP/1.0", b"OPTIONS * HTTP/1.1", b"GET http://h/x?y HTTP/1.1", b"GET /a#f HTTP/1.1",
    b"get / HTTP/1.1", b"GET / HTTP/1.2", b"GET  / HTTP/1.1", b"GET x HTTP/1.1", b"G\x00T / HTTP/1.1",
    b"GET /\x7f HTTP/1.1", b"", b"\r\nGET / HTTP/1.1", b"\r\n\r\nGET / HTTP/1.1",
    b"GET /a\nb HTTP/1.1"])
_FIELDS = st.sampled_from([
    b"Host: h", b"Host: i", b"Connection: close", b"Connection: keep-alive", b"Content-Length: 3",
    b"Content-Length: x", b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip",
    b"Expect: 100-continue", b"Expect: other", b"Origin: http://o", b"Cookie: a=b",
    b"X-A:  1 ", b"x-a:2", b" folded", b"Bad Name: v", b"X: \x01", b"Content-Type: t",
    b"content-type: u", b"X-Long: " + b"l" * 60])


@settings(max_examples=500, deadline=None)
@given(st.lists(st.lists(_FIELDS, max_size=6), min_size=1, max_size=3),
       st.lists(st.tuples(_LINES, st.integers(0, 2)), min_size=1, max_size=12),
       st.sampled_from([{}, {"max_headers": 3}, {"max_field": 40}, {"max_line": 30},
                        {"max_head": 90}]))
def test_a_memo_never_changes_what_a_head_is_read_as(blocks, requests, limits):
    """A connection's requests (a few header blocks, repeated under various
    request lines) parsed with its memo, and each parsed alone: the same
    head or the same refusal, request by request."""
    memo = HeadMemo()
    for line, which in requests:
        fields = blocks[which % len(blocks)]
        data = line + b"\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n"
        assert _outcome(data, memo, **limits) == _outcome(data, None, **limits), data


def test_a_known_block_keeps_everything_its_headers_said():
    """What the block said the first time (repeats joined, Expect, chunked)
    is what each later head with it says."""
    for block, check in [
            (b"Host: h\r\nX-A: 1\r\nX-A: 2\r\n", lambda h: h.get("x-a") == "1,2"),
            (b"Host: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n",
             lambda h: h.expect_continue and h.content_length == 4),
            (b"Host: h\r\nTransfer-Encoding: chunked\r\n", lambda h: h.chunked),
            (b"Host: h\r\nConnection: close\r\n", lambda h: not h.keep_alive)]:
        memo = HeadMemo()
        for target in (b"/a", b"/b"):
            head = parse_head(b"POST " + target + b" HTTP/1.1\r\n" + block + b"\r\n", memo=memo)
            assert head is not None and check(head), (block, target)
        assert head.block is not None and len(memo.blocks) == 1


def test_the_memo_holds_its_number_of_blocks_up_to_its_size():
    memo = HeadMemo()
    for n in range(MEMO_BLOCKS):
        parse_head(f"GET / HTTP/1.1\r\nHost: h{n}\r\n\r\n".encode(), memo=memo)
    assert len(memo.blocks) == MEMO_BLOCKS  # all of them, no fewer
    parse_head(b"GET / HTTP/1.1\r\nHost: new\r\n\r\n", memo=memo)
    assert "Host: new" in memo.blocks  # the newest is always kept
    memo = HeadMemo()
    block = "Host: h\r\nX: " + "v" * (MEMO_BLOCK_CHARS - len("Host: h\r\nX: "))
    assert len(block) == MEMO_BLOCK_CHARS
    parse_head(f"GET / HTTP/1.1\r\n{block}\r\n\r\n".encode(), memo=memo)
    assert block in memo.blocks

"""Tests of the pure HTTP-surface rules: routing, handshake, JSONP, htmlfile, origins."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_sio09 import packet, protocol
from flask_sio09.packet import PacketError
from flask_sio09.protocol import Route

PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SPECIAL = list("<>/!-\\\"'\n\r\u2028\u2029\ufffd😀é&=%+?:scriptSCRIPT \x00")
any_text = st.text(st.one_of(st.sampled_from(SPECIAL), st.integers(0, 0x10FFFF).map(chr)),
                   max_size=40)

# --- query strings --------------------------------------------------------------

query_text = st.text(st.sampled_from(list("ab=&;%+2F0 é\u0100?#")), max_size=30)


@PROPS
@given(query_text)
def test_a_query_is_read_as_parse_qs_reads_it(query):
    assert protocol.parse_query(query) == parse_qs(query, keep_blank_values=True)


@pytest.mark.parametrize("query, fields", [
    ("", {}),
    ("t=1700000000000-1", {"t": ["1700000000000-1"]}),
    ("t=1&disconnect", {"t": ["1"], "disconnect": [""]}),
    ("a=1&&a=2&=x&b=", {"a": ["1", "2"], "": ["x"], "b": [""]}),
    ("i=0&a=x%3Dy+z", {"i": ["0"], "a": ["x=y z"]}),
])
def test_query_examples(query, fields):
    assert protocol.parse_query(query) == fields


# --- routing --------------------------------------------------------------------

ROUTES = [
    ("/socket.io/1/", Route("1", None, None)),
    ("/socket.io/1", Route("1", None, None)),
    ("/socket.io/1/xhr-polling/SID", Route("1", "xhr-polling", "SID")),
    ("/socket.io/1/xhr-polling/SID/", Route("1", "xhr-polling", "SID")),
    ("/socket.io/1/websocket", Route("1", "websocket", None)),
    ("/socket.io/1/websocket/", Route("1", "websocket", None)),
    ("/socket.io/1//SID/", Route("1", "", "SID")),
    ("/socket.io/1//SID", Route("1", "", "SID")),
    ("/socket.io/1//", Route("1", "", None)),
    ("/socket.io/1///", Route("1", "", "")),
    ("/socket.io", Route("", None, None)),
    ("/socket.io/", Route("", None, None)),
    ("/socket.io//", Route("", None, None)),
    ("/socket.io/socket.io.js", Route("socket.io.js", None, None)),
    ("/socket.io/2/", Route("2", None, None)),
    ("/socket.io/1/jsonp-polling/a_b-C", Route("1", "jsonp-polling", "a_b-C")),
    ("/socket.io/1/a/b/c", None),
    ("/socket.io/1/a/b//", None),
    ("/socket.io/1/a/b/c/", None),
    ("/socket.iox/1/", None),
    ("/socket.iox", None),
    ("/socket", None),
    ("/other/1/", None),
    ("/", None),
    ("", None),
]


@pytest.mark.parametrize(("path", "route"), ROUTES, ids=[p or "empty" for p, _ in ROUTES])
def test_parse_path(path, route):
    assert protocol.parse_path(path) == route


@pytest.mark.parametrize("resource", ["custom", "/custom", "/custom/", "custom/"])
def test_parse_path_custom_resource(resource):
    assert protocol.parse_path("/custom/1/htmlfile/x", resource) == Route("1", "htmlfile", "x")
    assert protocol.parse_path("/socket.io/1/", resource) is None


def test_parse_path_nested_resource():
    assert protocol.parse_path("/a/b/1/", "a/b") == Route("1", None, None)
    assert protocol.parse_path("/a/1/", "a/b") is None


def test_route_is_frozen():
    route = Route("1", None, None)
    with pytest.raises(AttributeError):
        route.sid = "x"  # type: ignore[misc]


@PROPS
@given(st.lists(st.text(st.characters(exclude_characters="/"), max_size=6), min_size=1,
                max_size=3), st.booleans())
def test_parse_path_segments_property(segments, slash):
    path = "/socket.io/" + "/".join(segments) + ("/" if slash else "")
    route = protocol.parse_path(path)
    if not slash and segments[-1] == "":
        # the path then ends in "/", which reads as the optional trailing slash
        segments = segments[:-1] or [""]
    assert route == Route(*segments, *[None] * (3 - len(segments)))


@PROPS
@given(any_text)
def test_parse_path_never_raises(path):
    route = protocol.parse_path(path)
    assert route is None or isinstance(route, Route)


# --- handshake --------------------------------------------------------------------

@pytest.mark.parametrize(("args", "body"), [
    (("sid", 60, 60, ["websocket", "xhr-polling"]), "sid:60:60:websocket,xhr-polling"),
    (("sid", 60.0, 25.0, ("websocket",)), "sid:60:25:websocket"),
    (("sid", 2.5, 60, []), "sid:2.5:60:"),
    (("sid", None, None, ["htmlfile"]), "sid:::htmlfile"),
    (("Pba4YhfYMh_igRyfWTCY", 60, 60,
      ["websocket", "flashsocket", "htmlfile", "xhr-polling", "jsonp-polling"]),
     "Pba4YhfYMh_igRyfWTCY:60:60:websocket,flashsocket,htmlfile,xhr-polling,jsonp-polling"),
])
def test_handshake_body(args, body):
    assert protocol.handshake_body(*args) == body


def test_handshake_body_rejects_colon_in_sid():
    with pytest.raises(ValueError):
        protocol.handshake_body("a:b", 60, 60, ["websocket"])


# --- JSONP ----------------------------------------------------------------------

@pytest.mark.parametrize(("value", "index"), [
    ("0", 0), ("3", 3), ("0012", 12), ("1234567890", 1234567890),
    ("12345678901", None), ("", None), (None, None), ("-1", None), ("1a", None),
    ("\u0663", None), ("\u00b2", None), (" 1", None), ("1.0", None), ("+1", None),
])
def test_jsonp_index(value, index):
    assert protocol.jsonp_index(value) == index


def test_jsonp_wrap_vectors():
    assert protocol.jsonp_wrap(1, "1::") == 'io.j[1]("1::");'
    assert protocol.jsonp_wrap(3, "nQjmNz45Wc8JYgdKWTCa:60:60:websocket") == (
        'io.j[3]("nQjmNz45Wc8JYgdKWTCa:60:60:websocket");')
    assert protocol.jsonp_wrap(1, '5:::{"name":"hello","args":["wörld",1,{"a":[1,2]}]}') == (
        'io.j[1]("5:::{\\"name\\":\\"hello\\",\\"args\\":[\\"wörld\\",1,{\\"a\\":[1,2]}]}");')
    ack = packet.encode({"type": "ack", "ackId": 1, "args": ['a"b\n</script>']})
    assert protocol.jsonp_wrap(1, ack) == r'io.j[1]("6:::1+[\"a\\\"b\\n</script>\"]");'
    assert protocol.jsonp_wrap(0, "a\u2028b\u2029") == 'io.j[0]("a\\u2028b\\u2029");'
    assert protocol.jsonp_wrap(0, "\ud800") == 'io.j[0]("\\ud800");'


def test_jsonp_error():
    assert protocol.jsonp_error(2, "handshake bad origin") == (
        'io.j[2](new Error("handshake bad origin"));')
    assert protocol.jsonp_error(0, 'a"\u2028') == 'io.j[0](new Error("a\\"\\u2028"));'


@pytest.mark.parametrize("index", [-1, "1", 1.0, None, True])
def test_jsonp_rejects_bad_index(index):
    with pytest.raises(ValueError):
        protocol.jsonp_wrap(index, "x")
    with pytest.raises(ValueError):
        protocol.jsonp_error(index, "x")


P_REGEX = re.compile(r"io.j\[(\d+)\]\(\"(.*)\"\);")  # socketIO-client 0.5's parser


@PROPS
@given(any_text, st.integers(0, 10 ** 10))
def test_jsonp_wrap_property(payload, index):
    out = protocol.jsonp_wrap(index, payload)
    for bad in ("\n", "\r", "\u2028", "\u2029"):
        assert bad not in out
    out.encode("utf-8")
    match = P_REGEX.fullmatch(out)
    assert match and int(match.group(1)) == index
    assert json.loads(out[len(f"io.j[{index}]("):-2]) == payload


@pytest.mark.parametrize(("body", "payload"), [
    (b"d=%220%3A%3A%22", "0::"),
    (b"d=0%3A%3A", "0::"),
    (b"t=1&d=%22x%22", "x"),
    (b"d=%22a%22&d=%22b%22", "a"),
    (b"d=a+b", "a b"),
    (b"d=", ""),
    (b"d", ""),
    (b'd="\xc3\xa9"', "é"),
    ("d=%22%5Cufffd3%5Cufffd2%3A%3A%22".encode(), "\ufffd3\ufffd2::"),
    (b"d=%223%3A%3A%3Aline%5Cnbreak%22", "3:::line\nbreak"),
    (b"d=%223%3A%3A%3Araw%0Anewline%22", "3:::raw\nnewline"),
    (bytearray(b"d=2%3A%3A"), "2::"),
    # a lone surrogate of a message's raw text, escaped by the client's JSON:
    # U+FFFD, as handlers must be able to write the data as UTF-8 (a pair stays)
    (b"d=%223%3A%3A%3Aa%5Cud800b%22", "3:::a\ufffdb"),
    (b"d=%223%3A%3A%3A%5Cud83d%5Cude00%22", "3:::\U0001f600"),
])
def test_decode_jsonp_body(body, payload):
    assert protocol.decode_jsonp_body(body) == payload


@pytest.mark.parametrize("body", [
    b"", b"x=1", b"D=x", b"d=%22abc", b'd=%22a%22%22', b'd="\\x"', b"\xff=1&d=x",
    b"d=%ff", b"&".join([b"a=1"] * 100) + b"&d=x", None, 5,
])
def test_decode_jsonp_body_malformed(body):
    with pytest.raises(PacketError):
        protocol.decode_jsonp_body(body)


@PROPS
@given(any_text.filter(lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s)))
def test_decode_jsonp_body_round_trip(payload):
    # C: a form field holding JSON.stringify(payload); P: 'd=' + quoted JSON.
    assert protocol.decode_jsonp_body(urlencode({"d": json.dumps(payload)}).encode()) == payload
    body = "d=" + quote(json.dumps(payload, ensure_ascii=False))
    assert protocol.decode_jsonp_body(body.encode()) == payload


@PROPS
@given(st.binary(max_size=60))
def test_decode_jsonp_body_fuzz(body):
    try:
        assert type(protocol.decode_jsonp_body(body)) is str
    except PacketError:
        pass


# --- htmlfile ---------------------------------------------------------------------

def test_htmlfile_preamble():
    head = "<html><body><script>var _ = function (msg) { parent.s._(msg, document); };</script>"
    assert protocol.HTMLFILE_PREAMBLE == head + " " * 173
    assert len(protocol.HTMLFILE_PREAMBLE) == len(head) + 173


def test_htmlfile_chunk_vectors():
    assert protocol.htmlfile_chunk("1::") == '<script>_("1::");</script>'
    assert protocol.htmlfile_chunk('5:::{"name":"hello","args":["wörld",1,{"a":[1,2]}]}') == (
        '<script>_("5:::{\\"name\\":\\"hello\\",\\"args\\":[\\"wörld\\",1,'
        '{\\"a\\":[1,2]}]}");</script>')
    assert protocol.htmlfile_chunk("3:::/x</script>") == (
        '<script>_("3:::\\/x<\\/script>");</script>')
    assert protocol.htmlfile_chunk("3:::<!--x") == '<script>_("3:::\\u003c!--x");</script>'
    assert protocol.htmlfile_chunk("\u2028\u2029") == '<script>_("\\u2028\\u2029");</script>'


HTML_SPECIAL = st.sampled_from(["</script>", "</SCRIPT ", "<!--", "<!-", "-->", "\\", "/", "<",
                                "\\/", "<\\/", "\u2028", "\u2029", '"', "\n", "😀"])
html_text = st.lists(st.one_of(HTML_SPECIAL, any_text), max_size=8).map("".join)


@PROPS
@given(html_text)
def test_htmlfile_chunk_property(payload):
    out = protocol.htmlfile_chunk(payload)
    assert out.startswith("<script>_(") and out.endswith(");</script>")
    inner = out[len("<script>_("):-len(");</script>")]
    lowered = inner.lower()
    assert "</script" not in lowered and "<!--" not in lowered
    for bad in ("\n", "\r", "\u2028", "\u2029"):
        assert bad not in inner
    out.encode("utf-8")
    assert json.loads(inner.replace("\\/", "/")) == payload  # C undoes \/ first
    assert json.loads(inner) == payload  # \/ is also a valid JSON escape


# --- origins ------------------------------------------------------------------------

SAME_ORIGIN = [
    # (origin, referer, host, expected) with allowed=None
    (None, None, "h", True),
    (None, None, None, True),
    ("", None, "h", True),
    # no Origin (a JSONP script tag, an old browser's form POST): the Referer decides
    (None, "http://evil.example/", "h", False),
    (None, "http://h/page.html", "h", True),
    (None, "http://h:5000/app/?x=1#y", "h:5000", True),
    (None, "http://h:5000/", "h:5001", False),
    (None, "https://h/", "h:443", True),
    ("", "http://evil.example/", "h", False),
    ("http://h", "http://evil.example/", "h", True),  # the Origin, when there is one
    ("http://h:5000", None, "h:5000", True),
    ("http://h", None, "h", True),
    ("http://h", None, "h:80", True),
    ("http://h:80", None, "h", True),
    ("https://h", None, "h", True),
    ("https://h:443", None, "h", True),
    ("https://h", None, "h:443", True),
    ("http://H", None, "h", True),
    ("http://h", None, "H", True),
    ("http://[::1]:5000", None, "[::1]:5000", True),
    ("http://h:8000", None, "h", False),
    ("http://h", None, "h:8000", False),
    ("https://h", None, "h:80", False),
    ("http://other", None, "h", False),
    ("http://h.evil", None, "h", False),
    ("null", None, "h", False),
    ("http://h", None, None, False),
    ("garbage", None, "h", False),
    # socket.io-client 0.9 under Node: its ws 0.4 sends host:port, no scheme
    ("h:5000", None, "h:5000", True),
    ("H:5000", None, "h:5000", True),
    ("h", None, "h", True),
    ("h:5000", None, "h:5001", False),
    ("h", None, "h:5000", False),
    ("other:5000", None, "h:5000", False),
    ("h:5000", None, None, False),
    ("http://h:99999", None, "h", False),
    ("http://h", None, "h:bad", False),
]


@pytest.mark.parametrize(("origin", "referer", "host", "expected"), SAME_ORIGIN)
def test_origin_same_origin_default(origin, referer, host, expected):
    assert protocol.origin_allowed(origin, referer, None, host=host) is expected


@pytest.mark.parametrize(("origin", "referer"), [
    ("http://a.b", None), ("null", None), (None, None), (None, "http://x/"), ("junk", None),
])
def test_origin_star_allows_everything(origin, referer):
    assert protocol.origin_allowed(origin, referer, "*") is True
    assert protocol.origin_allowed(origin, referer, ["*"]) is True


FETCH_SITE = [
    # (allowed, origin, referer, Sec-Fetch-Site, expected): what a browser says
    # about the request, which no page can set
    (None, None, None, "cross-site", False),  # a page elsewhere hiding its referrer
    (None, None, None, "same-site", False),  # another port of the same host
    (None, None, None, "same-origin", True),
    (None, None, None, "none", True),  # typed in the address bar
    (None, None, None, None, True),  # not a browser, or an old one
    (None, "null", None, "same-origin", True),  # a no-referrer page's form POST
    (None, "null", None, "cross-site", False),
    (None, "http://h", None, "same-site", True),  # the Origin names the server
    (["http://a.b"], None, None, "cross-site", False),
    (["http://a.b"], None, None, None, True),
    (["http://a.b"], "null", None, "same-origin", True),
    (["http://a.b"], "http://a.b", None, "cross-site", True),
    (["*"], None, None, "cross-site", True),
    ("*", "null", None, "cross-site", True),
]


@pytest.mark.parametrize(("allowed", "origin", "referer", "fetch_site", "expected"), FETCH_SITE)
def test_origin_with_the_browsers_sec_fetch_site(allowed, origin, referer, fetch_site,
                                                  expected):
    assert protocol.origin_allowed(origin, referer, allowed, host="h",
                                   fetch_site=fetch_site) is expected


CREDENTIALED_SCRIPT = [
    # (allowed, origin, referer, Sec-Fetch-Site, expected) for a JSONP script
    # that carries the user's cookies: a page elsewhere that hides its Referer,
    # over plain HTTP (no Sec-Fetch-Site), must not read the user's packets
    (None, None, None, None, False),
    (["http://a.b"], None, None, None, False),
    (None, None, "http://h/page", None, True),  # the app's own page
    (None, None, "http://evil/page", None, False),
    (None, None, None, "same-origin", True),
    (None, None, None, "cross-site", False),
    ("*", None, None, None, True),  # everything allowed, as asked
    (["*"], None, None, None, True),
]


@pytest.mark.parametrize(("allowed", "origin", "referer", "fetch_site", "expected"),
                         CREDENTIALED_SCRIPT)
def test_origin_of_a_jsonp_script_that_carries_cookies(allowed, origin, referer, fetch_site,
                                                       expected):
    assert protocol.origin_allowed(origin, referer, allowed, host="h", fetch_site=fetch_site,
                                   credentialed_script=True) is expected


ORIGIN_LISTS = [
    # (allowed, origin, referer, expected)
    (["http://example.com:8000"], "http://example.com:8000", None, True),
    (["http://example.com:8000"], "http://EXAMPLE.com:8000", None, True),
    (["http://example.com:8000"], "http://example.com", None, False),
    (["http://example.com:8000"], "https://example.com:8000", None, False),
    (["http://example.com:8000"], "http://example.com:8001", None, False),
    (["https://a.b"], "https://a.b", None, True),
    (["https://a.b"], "https://a.b:443", None, True),
    (["https://a.b"], "http://a.b", None, False),
    (["https://a.b"], "https://a.b:8443", None, False),
    (["http://a.b"], "http://a.b:80", None, True),
    (["http://a.b", "https://c.d"], "https://c.d", None, True),
    ("http://a.b https://c.d", "https://c.d", None, True),
    ("http://a.b,https://c.d", "http://a.b", None, True),
    # Referer fallback, and the Origin wins when present
    (["http://example.com:8000"], None, "http://example.com:8000/page?q=1", True),
    (["http://example.com:8000"], None, "http://evil/", False),
    (["http://example.com:8000"], "", "http://example.com:8000/", True),
    (["http://example.com:8000"], "http://evil", "http://example.com:8000/", False),
    # neither header: a non-browser client, allowed (documented choice)
    (["http://example.com:8000"], None, None, True),
    (["http://example.com:8000"], "null", None, False),
    (["http://example.com:8000"], "null", "http://example.com:8000/", False),
    (["http://example.com:8000"], "junk", None, False),
    (["http://example.com:8000"], "http://example.com:bad", None, False),
    ([], "http://a.b", None, False),
    # N-style host:port patterns (PROTOCOL.md §1.4)
    (["foo.bar.com:*"], "http://foo.bar.com/x", None, True),
    (["foo.bar.com:81"], "http://foo.bar.com/x", None, False),
    (["foo.bar.com:80"], "http://foo.bar.com", None, True),
    (["foo.bar.com:80"], "https://foo.bar.com", None, True),  # N's missing port = 80
    (["foo.bar.com:443"], "https://foo.bar.com", None, True),
    (["foo.bar.com:80"], "https://foo.bar.com:443", None, False),
    (["*:8000"], "http://x.y:8000", None, True),
    (["*:8000"], "http://x.y:8001", None, False),
    (["*:*"], "http://anything:1", None, True),
    (["*:*"], "null", None, False),
    (["foo.bar.com"], "http://foo.bar.com:1234", None, True),
    (["FOO.bar.com:*"], "http://foo.bar.com", None, True),
    (["[::1]:5000"], "http://[::1]:5000", None, True),
    (["[::1]"], "http://[::1]:5000", None, True),
    (["other.com:*"], "http://foo.bar.com", None, False),
    ([None, 3, "http://a.b"], "http://a.b", None, True),
]


@pytest.mark.parametrize(("allowed", "origin", "referer", "expected"), ORIGIN_LISTS)
def test_origin_lists(allowed, origin, referer, expected):
    assert protocol.origin_allowed(origin, referer, allowed) is expected
    # a Host that none of these names changes nothing (the server's own
    # origin is always allowed: test_a_list_of_origins_never_locks_out...)
    assert protocol.origin_allowed(origin, referer, tuple(allowed) if isinstance(
        allowed, list) else allowed, host="another.org:9000") is expected


@PROPS
@given(st.one_of(st.none(), any_text), st.one_of(st.none(), any_text),
       st.one_of(st.none(), any_text),
       st.sampled_from([None, "*", ["http://a.b"], ["*:80", "x:*"], "a.b:1 http://c"]))
def test_origin_allowed_never_raises(origin, referer, host, allowed):
    assert protocol.origin_allowed(origin, referer, allowed, host=host) in (True, False)


def test_utf16_len_is_the_packet_one():
    assert protocol.utf16_len is packet.utf16_len
    assert protocol.utf16_len("a😀") == 3


def test_a_list_of_origins_never_locks_out_the_servers_own_pages():
    allowed = ["http://partner.example"]
    # same-origin XHRs carry only a Referer
    assert protocol.origin_allowed(None, "http://app.local:8000/chat", allowed,
                                   host="app.local:8000")
    assert protocol.origin_allowed("http://app.local:8000", None, allowed, host="app.local:8000")
    assert not protocol.origin_allowed("http://evil.example", None, allowed, host="app.local:8000")
    assert not protocol.origin_allowed(None, "http://evil.example/x", allowed, host="app.local:8000")
    assert protocol.origin_allowed("http://partner.example", None, allowed, host="app.local:8000")
    assert not protocol.origin_allowed("null", None, allowed, host="app.local:8000")

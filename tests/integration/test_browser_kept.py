"""A real browser (Chromium through Playwright) on connections the hub keeps
alive: the page polls, and meanwhile fetches other routes of the app, which
the browser sends on whatever connection of its pool is free, kept ones
included. Every answer must still be right and the session must live on."""

from __future__ import annotations

import pytest

from tests.integration.helpers import SioPage

OPTIONS = dict(heartbeat_interval=2, heartbeat_timeout=15, close_timeout=10, polling_duration=2)

FETCH_MANY = """async ([count, sid]) => {
  const texts = await Promise.all(Array.from({length: count}, (_, i) =>
    fetch('/healthz?n=' + i).then((r) => r.text())));
  const emitted = await fetch('/server_emit', {method: 'POST',
    headers: {'Content-Type': 'application/json'},
    body: JSON.stringify({event: 'fetched', args: [count], to: sid})});
  const page = await fetch('/').then((r) => r.text());
  return {texts, emitted: emitted.status, page: page.length};
}"""


@pytest.mark.parametrize("transport", ["xhr-polling", "jsonp-polling"])
@pytest.mark.parametrize("kind", ["sio_run", "gunicorn"])
def test_other_requests_of_the_page_while_it_polls(live_server, new_page, kind, transport):
    server = live_server(kind, websocket_mode="hub", **OPTIONS)
    page = SioPage(new_page(server), server)
    page.connect("g", "/", [transport])
    sid = page.wait_connected("g")
    assert page.transport("g") == transport
    for round_ in range(1, 4):
        assert page.emit_ack("g", "echo", round_, "x") == [round_, "x"]
        got = page.js(FETCH_MANY, 8, sid)
        assert got["texts"] == ["ok"] * 8 and got["emitted"] == 200 and got["page"] > 0
        page.wait_event("g", "fetched", count=round_)
    assert page.emit_ack("g", "echo", "last") == ["last"]

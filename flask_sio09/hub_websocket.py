"""WebSockets (and flashsockets) served by the I/O hub.

The hub thread reads frames (``wsframe``), hands the text of each message to
``Server.receive``, answers pings, and writes the session's outbox one frame
per packet, as the 0.9 protocol wants.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from threading import get_ident

from . import wsframe
from .droplog import log_about, log_dropped
from .hub import HIGH_WATER, READ, RECV_SIZE, Hub, HubConnection
from .server import INBOUND_LIMIT
from .session import Session
from .stopping import GOING_AWAY, GOING_AWAY_CODE

logger = logging.getLogger("flask_sio09")

#: encoded characters a handler run on the hub thread may queue for one
#: connection before they are written at once rather than after the handler
WRITE_AHEAD = 65536


class HubWebSocket(HubConnection):
    """A WebSocket (or flashsocket) carrying one session, framed by wsframe."""

    persistent = True

    def __init__(self, hub: Hub, sock: socket.socket, session: Session | None,
                 max_message_size: int) -> None:
        super().__init__(hub, sock, session)
        self.reader = wsframe.FrameReader(max_message_size)
        self._ended = False
        #: set once an end waits for the handlers of what came before it
        self._ending = False
        #: bytes read since the handlers last caught up (see INBOUND_LIMIT)
        self._unhandled = 0
        self._inbound_limit = max(INBOUND_LIMIT, max_message_size)

    def start(self, handshake: bytes, early: bytes = b"") -> None:
        """Send the 101 answer and attach to the session (hub thread).

        :param early: what the client sent behind its upgrade request that
                      the server had read already (frames sent before the
                      101 came): read as if they came after it.
        """
        self.hub.register(self, READ)
        self.write(handshake)
        if self.session is None:
            self.write(wsframe.encode_text("7:::1+0"))
            self.end(1000)
            return
        try:
            self.server.attach(self.session, self)
        except Exception:  # the session closed between lookup and attach
            self.write(wsframe.encode_text("7:::1+0"))
            self.end(1000)
            return
        if self.session.closed:  # ended before it opened: its last packets, then close
            self.end(1000)
            return
        if early:
            self._feed(early)

    def on_readable(self) -> None:
        try:  # (what read() does, inline: this runs for every message)
            data = self.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.lost()
            return
        if self._ending:
            return  # (what the peer sends after its close frame is dropped)
        # (what _feed and _handle do, inline for the most common read: one
        # text message, for a session that is not ending)
        try:
            events = self.reader.feed(data)
        except wsframe.WebSocketError as exc:
            self._failed(exc)
        else:
            session = self.session
            if len(events) == 1 and events[0][0] == "text" and session is not None and \
                    not self._ended:
                self.server.receive(session, events[0][1])
            else:
                self._handle(events)
        self._unhandled += len(data)
        if self._unhandled > self._inbound_limit and not self._ending and not self._ended \
                and not self.closed and self.session is not None:
            self._hold_reading()

    def _hold_reading(self) -> None:
        """Read no more until the handlers of what was read so far have run
        (back-pressure: see server.INBOUND_LIMIT). Fast handlers run on the
        hub by the end of this round, so this costs a client that the hub
        keeps up with one round per INBOUND_LIMIT bytes."""
        assert self.session is not None
        self.reading = False
        self._send()  # (watched for writing only, or for nothing)
        hub = self.hub
        self.server.when_handled(self.session, lambda: hub.call(self._read_again))

    def _read_again(self) -> None:
        self._unhandled = 0
        if not self.closed and not self.lingering and not self.reading and not self._ended:
            self.reading = True
            self._send()  # (watched for reading again)

    def _feed(self, data: bytes) -> None:
        try:
            events = self.reader.feed(data)
        except wsframe.WebSocketError as exc:
            self._failed(exc)
            return
        self._handle(events)

    def _failed(self, exc: wsframe.WebSocketError) -> None:
        """The client broke RFC 6455: what came before still counts; then end."""
        log_about(self.session, "websocket protocol error",
                  "websocket of %s: protocol error %s (%s)",
                  self.session.sid if self.session else "-", exc.code, exc)
        self._handle(exc.events)
        self._end_in_order(exc.code)

    def _handle(self, events: list[tuple]) -> None:
        session = self.session
        for event in events:
            kind = event[0]
            if kind == "text":
                if session is not None and not self._ended:
                    self.server.receive(session, event[1])
            elif kind == "ping":
                # a peer that pings without reading would grow ``out`` without
                # bound: past HIGH_WATER its pings go unanswered (RFC 6455
                # §5.5.3 lets an endpoint answer only the latest of them)
                if len(self.out) < HIGH_WATER:
                    self.write(wsframe.encode_pong(event[1]))
            elif kind == "close":
                # the client's code is echoed (RFC 6455 5.5.1, as wsproto does
                # in thread mode); an empty close is answered with an empty one
                self._end_in_order(event[1])
                return
            elif kind == "binary" and session is not None:
                log_dropped(session, "session %s: binary websocket message dropped", session.sid)

    def _end_in_order(self, code: int | None) -> None:
        """End once the handlers of the messages read before have run: they
        come first, as on the wire (a message and a close frame can arrive in
        one read, and its handler runs after the read, maybe on the pool)."""
        if self.session is None or self._ended:
            self.end(code)
        else:
            self._after_handlers(lambda: self.end(code))

    def _after_handlers(self, then: Callable[[], None]) -> None:
        """Run ``then`` on the hub thread once the session's handlers queued
        so far have run; read nothing more meanwhile."""
        self._ending = True
        hub = self.hub
        assert self.session is not None
        self.server.workers.submit(self.session, lambda: hub.call(then))

    def wake(self) -> None:
        """The outbox gained data or the session closed. A handler thread
        writes the packets itself when the socket takes them all at once (the
        common case), sparing the hub a wake-up; otherwise the hub flushes.
        On the hub thread (a handler it runs) the packets wait for the end of
        the round, one write per connection, unless they pile up: a handler
        that emits a lot in one go has them written as it goes, so that the
        outbox limit cuts off only clients that do not read."""
        hub = self.hub
        if get_ident() == hub.leader:
            session = self.session
            if session is None or session.outbox_size() < WRITE_AHEAD or \
                    not self._write_direct():
                hub.mark(self)
        elif not self._write_direct():
            hub.mark(self)

    def _write_direct(self) -> bool:
        """Try to send the outbox now; False leaves the rest to the hub."""
        session = self.session
        if session is None or session.closed:
            return False
        lock = self.lock
        lock.acquire()  # (not ``with``: see session.py's LOCK_NOTE)
        try:
            if self.closed or self._ended or self.out:
                return False  # the hub owns what is pending; order matters
            packets = session.take_outbox(self)
            if not packets:
                return session.transport is self
            data = wsframe.encode_texts(packets)
            try:
                sent = self.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self.out += data
                return False  # the hub notices the failure and ends the session
            if sent == len(data):
                return True
            self.out += data[sent:]
            return False
        finally:
            lock.release()

    def flush(self) -> None:
        session = self.session
        if session is None or self._ended:
            return
        if self._write_direct():  # the common case: all sent at once
            return
        if len(self.out) < HIGH_WATER:
            packets = session.take_outbox(self)
            if packets:
                data = wsframe.encode_texts(packets)
                with self.lock:
                    self.out += data
        if session.closed or session.transport is not self:
            self.end(GOING_AWAY_CODE if session.close_reason == GOING_AWAY else 1000)
            return
        self._send()

    def end(self, code: int | None) -> None:
        """Write what the session still has, a close frame, then close."""
        if self._ended:
            return
        self._ended = True
        session = self.session
        tail = b""
        if session is not None:
            leftover = self.server.release(session, self)
            if leftover:
                tail = wsframe.encode_texts(leftover)
        with self.lock:
            self.out += tail + wsframe.encode_close(code)
        # nothing more is read until all is written (the peer's end is read
        # then, while lingering): a client that sends without reading would
        # otherwise be read, and its bytes dropped, at full speed meanwhile
        self.reading = False
        self._send()
        self.close_after_flush()

    def lost(self) -> None:
        if self._ending:  # the end already queued releases the session, in order
            self.close()
            return
        if not self._ended and self.session is not None:
            # the session ends after the handlers of what was read before
            self._after_handlers(self._release)
        self.close()

    def _release(self) -> None:
        if not self._ended and self.session is not None:
            self._ended = True
            self.server.release(self.session, self)

"""Session state machine, outbox and namespace holding."""

import pytest

from flask_sio09.session import (TRANSITIONS, ForwardingCallback, IllegalTransition, Session,
                                 State)


class FakeTransport:
    def __init__(self, persistent=False):
        self.persistent = persistent
        self.wakes = 0

    def wake(self):
        self.wakes += 1


def make(limit=1000):
    return Session("sid1", {}, now=0.0, max_outbox_bytes=limit)


def test_transition_table_covers_only_legal_moves():
    assert TRANSITIONS[(State.HANDSHAKEN, "open")] is State.CONNECTED
    assert (State.CLOSED, "open") not in TRANSITIONS
    assert (State.CLOSED, "close") not in TRANSITIONS


def test_illegal_transition_raises_and_changes_nothing():
    session = make()
    session.close("test")
    with pytest.raises(IllegalTransition):
        session.attach(FakeTransport(), 1.0)
    assert session.state is State.CLOSED
    assert session.transport is None


def test_first_attach_opens_later_ones_replace():
    session = make()
    first, second = FakeTransport(), FakeTransport()
    assert session.attach(first, 1.0) == (True, None)
    assert session.state is State.CONNECTED
    assert session.detached_since is None
    assert session.attach(second, 2.0) == (False, first)
    assert session.transport is second


def test_send_wakes_transport_and_release_hands_over_outbox():
    session = make()
    transport = FakeTransport()
    session.attach(transport, 1.0)
    assert session.send("3:::a")
    assert session.send("3:::b")
    assert transport.wakes == 2
    assert session.release(transport, 5.0) == ["3:::a", "3:::b"]
    assert session.transport is None and session.detached_since == 5.0
    # packets sent while detached wait in the outbox, none lost
    assert session.send("3:::c")
    assert session.take_outbox() == ["3:::c"]


def test_release_by_a_replaced_transport_takes_nothing():
    session = make()
    old, new = FakeTransport(), FakeTransport()
    session.attach(old, 1.0)
    session.attach(new, 1.0)
    session.send("3:::x")
    assert session.release(old, 2.0) is None  # replaced: it takes nothing
    assert session.transport is new
    assert session.take_outbox() == ["3:::x"]


def test_attach_with_queued_data_wakes_at_once():
    session = make()
    session.send("3:::early")
    transport = FakeTransport()
    session.attach(transport, 1.0)
    assert transport.wakes == 1


def test_outbox_limit_reports_overflow():
    session = make(limit=10)
    assert session.send("12345")
    assert not session.send("1234567")


def test_outbox_limit_counts_what_waits_not_what_was_taken():
    session = make(limit=10)
    for _ in range(5):  # 35 bytes in all, never more than 7 waiting
        assert session.send("1234567")
        assert session.take_outbox() == ["1234567"]


def test_closed_session_drops_packets_and_wakes_transport_once():
    session = make()
    transport = FakeTransport()
    session.attach(transport, 1.0)
    assert session.close("bye") is True
    assert session.close("again") is False
    assert transport.wakes == 1
    assert session.send("3:::late") is True
    assert session.take_outbox() == []
    assert session.close_reason == "bye"


def test_namespace_packets_are_held_until_accepted():
    session = make()
    assert session.begin_namespace("/chat")
    assert not session.begin_namespace("/chat")
    assert not session.is_connected("/chat")
    session.send("5::/chat:{\"name\":\"early\"}", "/chat")
    session.send("3:::global")
    assert session.take_outbox() == ["3:::global"]
    session.accept_namespace("/chat", "1::/chat")
    assert session.is_connected("/chat")
    assert session.take_outbox() == ["1::/chat", "5::/chat:{\"name\":\"early\"}"]


def test_refused_namespace_drops_held_packets():
    session = make()
    session.begin_namespace("/p")
    session.send("3::/p:secret", "/p")
    session.refuse_namespace("/p")
    assert not session.is_connected("/p")
    assert session.take_outbox() == []


def test_callbacks_are_per_endpoint_and_dropped_on_leave():
    session = make()
    session.begin_namespace("")
    session.accept_namespace("", "1::")
    session.begin_namespace("/a")
    session.accept_namespace("/a", "1::/a")
    first = session.add_callback("/a", print)
    second = session.add_callback("", len)
    assert first != second
    assert session.pop_callback("", first) is None
    assert session.leave_namespace("/a")
    assert session.pop_callback("/a", first) is None
    assert session.pop_callback("", second) is len
    assert session.pop_callback("", second) is None


def test_take_outbox_for_a_replaced_transport_gets_nothing():
    session = make()
    old, new = FakeTransport(), FakeTransport()
    session.attach(old, 1.0)
    session.send("3:::a")
    session.attach(new, 2.0)
    assert session.take_outbox(old) == []
    assert session.take_outbox(new) == ["3:::a"]


def test_replace_hands_over_only_from_the_current_transport():
    session = make()
    waiter, hub_poll, newer = FakeTransport(), FakeTransport(), FakeTransport()
    session.attach(waiter, 1.0)
    assert session.replace(waiter, hub_poll)
    assert session.transport is hub_poll
    session.attach(newer, 2.0)
    assert not session.replace(hub_poll, FakeTransport())
    assert session.transport is newer


class Forwarded(ForwardingCallback):
    """Stands for a callback of another process (cluster.ForwardedAck)."""

    def __init__(self, told):
        self.told = told

    def __call__(self, *args):
        pass

    def unanswered(self):
        self.told.append(self)


def test_callbacks_that_can_no_longer_be_answered_are_told_so():
    told = []
    session = make()
    for endpoint in ("/a", "/b", "/c", ""):
        assert session.begin_namespace(endpoint)
    kept = {endpoint: Forwarded(told) for endpoint in ("/a", "/b", "/c", "")}
    for endpoint, callback in kept.items():
        session.add_callback(endpoint, callback)
    session.add_callback("", lambda: None)  # an app's own callable: nothing to tell
    session.refuse_namespace("/a")  # its connect handler said no
    assert told == [kept["/a"]]
    session.leave_namespace("/b")
    assert told == [kept["/a"], kept["/b"]]
    session.close("gone")  # the rest, each once
    assert len(told) == 4 and {id(c) for c in told[2:]} == {id(kept["/c"]), id(kept[""])}


def test_a_callback_whose_packet_could_not_be_sent_is_told_and_forgotten():
    told = []
    session = make()
    session.begin_namespace("/a")
    callback = Forwarded(told)
    ack_id = session.add_callback("/a", callback)
    session.unsent_callback("/a", ack_id)
    assert told == [callback]
    assert session.pop_callback("/a", ack_id) is None
    session.unsent_callback("/a", ack_id)  # once only
    assert told == [callback]


def test_a_session_that_ended_or_left_keeps_no_callback():
    told = []
    session = make()
    session.begin_namespace("/a")
    session.leave_namespace("/a")
    gone_there = Forwarded(told)
    ack_id = session.add_callback("/a", gone_there)  # asked as it left
    assert session.pop_callback("/a", ack_id) is None and told == [gone_there]
    session.begin_namespace("")
    session.close("gone")
    gone = Forwarded(told)
    ack_id = session.add_callback("", gone)  # asked as it ended
    assert session.pop_callback("", ack_id) is None and told == [gone_there, gone]


def test_a_packet_of_exactly_the_outbox_limit_fits():
    session = make(limit=10)
    assert session.send("x" * 10) is True
    assert session.send("y") is False  # one character past it overflows


def test_leaving_a_connecting_namespace_stops_holding_its_packets():
    # what is sent there afterwards is not kept in a hold list that nothing
    # would ever release (it goes out, or is dropped with joined=True)
    session = make()
    assert session.begin_namespace("/a")
    assert session.leave_namespace("/a")
    assert session.send("5::/a:{}", "/a") is True
    assert session.take_outbox() == ["5::/a:{}"]
    assert session.send("5::/a:{}", "/a", joined=True) is True
    assert session.take_outbox() == []
    assert session._held == {}


def test_a_closed_session_joins_no_namespace():
    session = make()
    session.close("test")
    assert session.begin_namespace("/a") is False
    assert "/a" not in session.namespaces


def test_detach_by_a_replaced_transport_leaves_the_newer_one_attached():
    # A poll whose client hung up is detached after a newer poll attached:
    # the newer one must keep the session, or the client's next packets wait
    # for yet another poll (and the session looks idle to close_timeout).
    session = make()
    old, new = FakeTransport(), FakeTransport()
    session.attach(old, 1.0)
    session.attach(new, 2.0)
    session.detach(old, 3.0)
    assert session.transport is new
    assert session.detached_since is None
    session.detach(new, 4.0)  # its own detach still lets go
    assert session.transport is None and session.detached_since == 4.0


def test_packets_held_for_a_connecting_namespace_count_toward_the_outbox_limit():
    # A connect handler that emits more than max_outbox_bytes while it runs
    # must close the session as any other overflow would: released all at
    # once, the held packets would otherwise grow the outbox past its limit.
    session = make(limit=100)
    assert session.begin_namespace("/big")
    for _ in range(3):
        assert session.send("5::/big:" + "x" * 40, "/big")  # held: no overflow yet
    assert session.outbox_size() == 0
    assert session.accept_namespace("/big", "1::/big") is False
    fits = make(limit=100)
    fits.begin_namespace("/small")
    fits.send("5::/small:{}", "/small")
    assert fits.accept_namespace("/small", "1::/small") is True

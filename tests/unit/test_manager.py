"""The room index and encode-once broadcast: the manager contract.

Every test runs against ``MemoryManager`` and ``RedisManager`` (a real
redis-server): with all its clients in this process, the Redis manager must
behave exactly as the memory one. What crosses processes is in
``test_redis_manager.py``.
"""

import itertools

import pytest

from flask_sio09.manager import MemoryManager

_channels = itertools.count()


@pytest.fixture
def delivered():
    return []


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def manager(request, delivered):
    def deliver(sid, ns, encoded):
        delivered.append((sid, ns, encoded))

    if request.param == "memory":
        m = MemoryManager(deliver)
    else:
        from flask_sio09.redis_manager import RedisManager

        url = request.getfixturevalue("redis_server").url
        m = RedisManager(deliver, url, channel=f"contract-{next(_channels)}")
    for sid in ("a", "b", "c"):
        m.connect(sid, "/chat")
    m.connect("a", "")
    return m


def test_everyone_and_own_room(manager):
    assert sorted(manager.recipients("/chat", None)) == ["a", "b", "c"]
    assert manager.recipients("/chat", "b") == ["b"]
    assert manager.recipients("", None) == ["a"]
    assert manager.recipients("/nowhere", None) == []


def test_rooms_and_skip(manager):
    manager.enter_room("a", "/chat", "lobby")
    manager.enter_room("b", "/chat", "lobby")
    manager.enter_room("c", "/chat", "den")
    assert sorted(manager.recipients("/chat", "lobby")) == ["a", "b"]
    assert manager.recipients("/chat", "lobby", skip_sid="a") == ["b"]
    assert sorted(manager.recipients("/chat", ["lobby", "den"], skip_sid=["b"])) == ["a", "c"]
    assert sorted(manager.get_rooms("a", "/chat")) == ["a", "lobby"]
    manager.leave_room("a", "/chat", "lobby")
    assert manager.recipients("/chat", "lobby") == ["b"]
    manager.close_room("lobby", "/chat")
    assert manager.recipients("/chat", "lobby") == []


def test_rooms_of_the_global_namespace(manager):
    manager.connect("b", "")
    manager.enter_room("a", "", "lobby")
    manager.enter_room("b", "", "lobby")
    manager.enter_room("b", "/chat", "lobby")
    assert sorted(manager.recipients("", "lobby")) == ["a", "b"]
    manager.leave_room("a", "", "lobby")
    assert manager.recipients("", "lobby") == ["b"]
    assert manager.get_rooms("a", "") == ["a"]
    assert manager.recipients("/chat", "lobby") == ["b"]  # another namespace's room


def test_only_a_client_of_the_namespace_enters_a_room(manager):
    manager.disconnect("b", "/chat")  # b left /chat (its disconnect handler ran)
    manager.enter_room("b", "/chat", "late")  # join_room(sid=b) from elsewhere, too late
    manager.enter_room("zz", "/chat", "late")  # a sid that never came
    manager.enter_room("a", "/nowhere", "late")  # a namespace a never joined
    assert manager.recipients("/chat", "late") == []
    assert manager.get_rooms("b", "/chat") == [] and manager.get_rooms("zz", "/chat") == []
    assert manager.get_participants("/nowhere", "late") == []
    manager.connect("b", "/chat")  # back again: it can enter rooms
    manager.enter_room("b", "/chat", "late")
    assert manager.recipients("/chat", "late") == ["b"]


def test_disconnect_leaves_every_room_of_that_namespace_only(manager):
    manager.enter_room("a", "/chat", "lobby")
    manager.disconnect("a", "/chat")
    assert manager.get_rooms("a", "/chat") == []
    assert "a" not in manager.recipients("/chat", None)
    assert manager.recipients("", None) == ["a"]


def test_emit_encoded_hands_the_same_string_to_each(manager, delivered):
    count = manager.emit_encoded("5::/chat:{}", "/chat", skip_sid="c")
    assert count == 2
    assert sorted(d[0] for d in delivered) == ["a", "b"]
    assert all(d[2] is delivered[0][2] for d in delivered)


def test_is_connected_is_per_namespace(manager):
    assert manager.is_connected("a", "/chat") and manager.is_connected("a", "")
    assert not manager.is_connected("b", "")
    assert not manager.is_connected("z", "/chat")
    manager.disconnect("a", "/chat")
    assert not manager.is_connected("a", "/chat")


def test_rooms_and_namespaces_emptied_by_leaving_are_forgotten(manager):
    # what a long-running server keeps must not grow with every client it
    # ever had: a room's entry goes with its last member, a namespace's
    # with its last client (checked on the index itself: nothing public
    # tells an empty entry from none)
    for i in range(50):
        sid = f"s{i}"
        manager.connect(sid, "/chat")
        manager.connect(sid, f"/ns{i}")
        manager.enter_room(sid, "/chat", f"room{i}")
        manager.enter_room(sid, f"/ns{i}", "shared")
        if i % 2:
            manager.leave_room(sid, "/chat", f"room{i}")
        manager.disconnect(sid, "/chat")
        manager.disconnect(sid, f"/ns{i}")
    for sid in ("a", "b", "c"):
        manager.disconnect(sid, "/chat")
    manager.disconnect("a", "")
    assert manager._rooms == {}


@pytest.mark.parametrize("room", [None, 5, ["lobby"], b"lobby"],
                         ids=["None", "int", "list", "bytes"])
def test_a_room_that_is_not_a_string_is_refused(manager, room):
    """None names the index's "everyone in the namespace": a handler's
    close_room(room) with a client's null would have ended every broadcast
    of the namespace, and leave_room(None) took its client out of them."""
    for act in (lambda: manager.enter_room("a", "/chat", room),
                lambda: manager.leave_room("a", "/chat", room),
                lambda: manager.close_room(room, "/chat"),
                lambda: manager.enter_room("zz", "/chat", room),  # (another process's sid)
                lambda: manager.leave_room("zz", "/chat", room)):
        with pytest.raises(TypeError, match="a room is a string"):
            act()
    assert sorted(manager.recipients("/chat", None)) == ["a", "b", "c"]
    assert manager.get_rooms("a", "/chat") == ["a"]


@pytest.mark.parametrize("to, skip", [([5], None), (5, None), (b"lobby", None),
                                      (["lobby", None], None), ("lobby", [5]), (None, 5)])
def test_an_emit_to_what_is_not_sids_or_rooms_is_refused(manager, delivered, to, skip):
    """A number among the rooms reached this process's clients and was
    dropped by every other process."""
    manager.enter_room("a", "/chat", "lobby")
    with pytest.raises(TypeError, match="to=|skip_sid="):
        manager.emit_encoded("x", "/chat", to, skip)
    assert delivered == []
    assert manager.emit_encoded("ok", "/chat", ("lobby", "b"), iter(["b"])) == 1
    assert delivered == [("a", "/chat", "ok")]

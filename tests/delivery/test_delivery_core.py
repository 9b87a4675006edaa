"""
The delivery core (imapd.delivery.core) on real stores: addresses and
users, trace headers for CRLF and LF input, large messages spilled to
disk, and folders.
"""

from __future__ import annotations

import pytest

from imapd.delivery.core import (BadAddress, CannotCreate, Message, UnknownUser,
                                 split_address)
from tests.delivery.delivery_helpers import make_deliverer, messages_of, open_user_store


@pytest.mark.parametrize("address,delimiter,expected", [
    ("alice@example.org", "", ("alice", "example.org", None)),
    ("alice+lists@example.org", "", ("alice+lists", "example.org", None)),
    ("alice+lists@example.org", "+", ("alice", "example.org", "lists")),
    ("alice-x+y@example.org", "+-", ("alice", "example.org", "x+y")),
    ("alice+@example.org", "+", ("alice", "example.org", None)),
    ("+x@example.org", "+", ("+x", "example.org", None)),
    ("alice", "+", ("alice", "", None)),
])
def test_split_address(address, delimiter, expected):
    """user+detail splits at the first delimiter found, never at position 0."""
    assert split_address(address, delimiter) == expected


def test_split_address_needs_a_local_part():
    """An address without a local part is a BadAddress."""
    with pytest.raises(BadAddress):
        split_address("@example.org")


def test_resolve_whole_address_then_local_part(deliverer):
    """bob@example.org is a user by its whole address; alice by her local part."""
    assert deliverer.resolve("bob@example.org").user == "bob@example.org"
    assert deliverer.resolve("alice@elsewhere.example").user == "alice"
    with pytest.raises(UnknownUser):
        deliverer.resolve("bob@other.example")


def test_lf_input_gets_lf_trace_headers(deliverer, location, tmp_path):
    """A message piped with LF line ends gets LF trace headers, not mixed ones."""
    message = Message.from_bytes(b"Subject: lf\n\nbody\n")
    deliverer.deliver(deliverer.resolve("alice"), message, "s@x")
    (stored,) = messages_of(location, "alice", tmp_path)
    assert stored.replace(b"\r\n", b"\n") == (
        b"Return-Path: <s@x>\nDelivered-To: alice\nSubject: lf\n\nbody\n")
    # The prefix matches the message's line ends (a store keeps content
    # with CR CR LF as it is, so mixed ends would stay mixed).
    assert message.crlf is False
    assert deliverer._trace(deliverer.resolve("alice"), "s@x", False).count(b"\r") == 0
    assert Message.from_bytes(b"Subject: crlf\r\n\r\n").crlf is True


def test_header_injection_through_addresses_is_neutralised(deliverer, location, tmp_path):
    """Control characters in the envelope cannot add header lines."""
    message = Message.from_bytes(b"Subject: x\r\n\r\nbody\r\n")
    deliverer.deliver(deliverer.resolve("alice"), message, "s@x>\r\nX-Evil: 1\r\n<")
    (stored,) = messages_of(location, "alice", tmp_path)
    assert b"\nX-Evil" not in stored


def test_large_message_spills_to_disk(deliverer, location, tmp_path, monkeypatch):
    """
    A message over Message.MEMORY is kept in a temporary file and stored
    through append_file, byte for byte, to two recipients.
    """
    monkeypatch.setattr(Message, "MEMORY", 1000)
    monkeypatch.setattr(Message, "CHUNK", 333)
    body = b"".join(b"line %05d of a long message\r\n" % i for i in range(200))
    message = Message()
    data = b"Subject: big\r\n\r\n" + body
    for i in range(0, len(data), 100):
        message.write(data[i:i + 100])
    assert message._memory is None
    prefix = b"Return-Path: <s@x>\r\nDelivered-To: alice\r\n"
    assert message.stored_size(prefix) == len(prefix) + len(data)
    for user in ("alice", "bob@example.org"):
        deliverer.deliver(deliverer.resolve(user), message, "s@x")
    message.close()
    (stored,) = messages_of(location, "alice", tmp_path)
    assert stored.replace(b"\r\n", b"\n") == (prefix + data).replace(b"\r\n", b"\n")
    assert len(messages_of(location, "bob@example.org", tmp_path)) == 1


def test_explicit_folder_with_an_impossible_name(location, passwd_file, tmp_path):
    """-m with a name no store accepts is CannotCreate; as a detail it is INBOX."""
    deliverer = make_deliverer(location, passwd_file, tmp_path, delimiter="+")
    message = Message.from_bytes(b"Subject: x\r\n\r\nbody\r\n")
    with pytest.raises(CannotCreate):
        deliverer.deliver(deliverer.resolve("alice", folder="../escape"), message,
                          strict_folder=True)
    mailbox, _uid = deliverer.deliver(deliverer.resolve("alice", folder="../escape"), message)
    assert mailbox == "INBOX"


def test_folder_is_used_when_it_exists(deliverer, location, tmp_path):
    """A folder that exists takes the message; the UID is the one assigned."""
    store = open_user_store(location, "alice", tmp_path)
    store.create("Lists")
    store.close()
    message = Message.from_bytes(b"Subject: x\r\n\r\nbody\r\n")
    assert deliverer.deliver(deliverer.resolve("alice", folder="Lists"), message) == ("Lists", 1)
    assert deliverer.deliver(deliverer.resolve("alice", folder="Lists"), message) == ("Lists", 2)


def _counting_opener(deliverer):
    """Make C{deliverer} count the stores it opens; the list of them."""
    real, opened = deliverer._open_store, []

    def opener(location, user, home, index):
        store = real(location, user, home, index)
        opened.append(store)
        return store
    deliverer._open_store = opener
    return opened


def test_deliveries_to_one_user_keep_the_store(deliverer, location, tmp_path):
    """
    A stream of deliveries to one user opens the user's store once (each
    open parsed the location and chose the lock methods), and every
    message is there.
    """
    opened = _counting_opener(deliverer)
    alice = deliverer.resolve("alice@example.org")
    for n in range(3):
        deliverer.deliver(alice, Message.from_bytes(b"Subject: %d\n\nx\n" % n), "s@x")
    deliverer.deliver_batch([(alice, Message.from_bytes(b"Subject: b\n\nx\n"), "s@x"),
                             (alice, Message.from_bytes(b"Subject: c\n\nx\n"), "s@x")])
    assert len(opened) == 1
    assert len(messages_of(location, "alice", tmp_path)) == 5


def test_a_kept_store_is_dropped_after_a_failure_or_when_its_root_is_gone(
        deliverer, location, tmp_path):
    """
    A delivery that failed closes its store, and one whose mail root was
    removed meanwhile is not used: the next delivery opens the store anew
    (which makes the root again), so a broken store is not kept.
    """
    import os
    import shutil

    from imapd.delivery.core import TemporaryFailure
    from storage.errors import StoreError

    opened = _counting_opener(deliverer)
    alice = deliverer.resolve("alice@example.org")
    deliverer.deliver(alice, Message.from_bytes(b"Subject: 1\n\nx\n"), "s@x")

    def broken(name, readonly=False):
        raise StoreError("cannot write")
    opened[0].open = broken
    with pytest.raises(TemporaryFailure):
        deliverer.deliver(alice, Message.from_bytes(b"Subject: 2\n\nx\n"), "s@x")
    deliverer.deliver(alice, Message.from_bytes(b"Subject: 3\n\nx\n"), "s@x")
    assert len(opened) == 2
    root = opened[1].root
    shutil.rmtree(root)
    try:
        deliverer.deliver(alice, Message.from_bytes(b"Subject: 4\n\nx\n"), "s@x")
    except TemporaryFailure:
        # Maildir: this process read the uidlist that went with the root,
        # and a missing one is taken for a stale read, not an empty box.
        assert location.startswith("maildir:")
    assert len(opened) == 3
    assert os.path.isdir(root)


def test_kept_stores_are_bounded(deliverer, passwd_file, tmp_path):
    """At most KEEP_STORES stores are kept; the oldest is closed first."""
    deliverer.KEEP_STORES = 1
    closed = []
    opened = _counting_opener(deliverer)
    for name in ("alice@example.org", "bob@example.org", "alice@example.org"):
        deliverer.deliver(deliverer.resolve(name), Message.from_bytes(b"Subject: x\n\nx\n"),
                          "s@x")
        for store in opened:
            if not hasattr(store, "counted"):
                store.counted = True
                real_close = store.close
                store.close = lambda real_close=real_close, s=store: (closed.append(s),
                                                                       real_close())
    assert len(opened) == 3
    assert closed[:2] == opened[:2]


def test_two_deliveries_to_one_user_at_once_keep_one_store(deliverer):
    """
    Two deliveries to one user at once (not grouped: under a quota, each
    in its own thread) each open a store; when both are done one is kept
    and the other is closed, not dropped unclosed.
    """
    opened = _counting_opener(deliverer)
    alice = deliverer.resolve("alice@example.org")
    closed = []
    with deliverer._kept_store(alice) as first:
        with deliverer._kept_store(alice) as second:
            assert second is not first
        real = second.close
        second.close = lambda: (closed.append(second), real())
    assert len(opened) == 2
    assert closed == [second]
    assert list(deliverer._stores.values()) == [first]

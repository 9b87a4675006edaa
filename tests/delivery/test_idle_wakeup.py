"""
An LMTP delivery wakes the same process's IDLE sessions of that user at
once (L{imapd.mailwatch}), not at their poll: both protocols over
StringTransports on one fake clock, on Maildir and mbox.
"""

from __future__ import annotations

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import Portal

from imapd.account import MailRealm
from imapd.mailwatch import MailWatcher, watcher_for
from imapd.server import ServerContext, SessionLimits
from tests.imapd.conftest import Conversation

MESSAGE = b"Subject: wake up\r\n\r\nbody\r\n"


def imap_session(location, tmp_path, clock, poll: float) -> Conversation:
    realm = MailRealm(location, home_for=lambda user: None, index_dir=str(tmp_path / "index"))
    context = ServerContext(
        portal=Portal(realm, [InMemoryUsernamePasswordDatabaseDontUse(alice=b"pw")]),
        reactor=clock, storage_pool=None, tls=object(), allow_plaintext_auth=True,
        limits=SessionLimits(idle_poll_interval=poll))
    conv = Conversation(context, clock)
    conv.output()
    conv.ok("l1 LOGIN alice pw")
    conv.ok("s1 SELECT INBOX")
    return conv


def test_delivery_wakes_idle_before_poll(make_lmtp, location, tmp_path, clock):
    """
    With a 30 s poll, EXISTS comes MailWatcher.SETTLE seconds after the
    LMTP reply; an IDLE of another user is not woken.
    """
    conv = imap_session(location, tmp_path, clock, poll=30.0)
    conv.send(b"i1 IDLE\r\n")
    assert conv.lines() == ["+ idling"]
    lmtp = make_lmtp()
    lines = lmtp.send(b"LHLO x\r\nMAIL FROM:<s@x>\r\nRCPT TO:<alice>\r\nDATA\r\n"
                      + MESSAGE + b".\r\n")
    assert lines[-1] == "250 2.0.0 <alice> Saved"
    assert conv.lines() == []
    clock.advance(MailWatcher.SETTLE)
    assert conv.lines()[:1] == ["* 1 EXISTS"]
    conv.send(b"DONE\r\n")
    assert conv.lines()[-1].startswith("i1 OK")
    # IDLE ended: its subscription is gone.
    assert not watcher_for(clock)._by_user


def test_watcher_coalesces_and_cancels(clock):
    """Several notices within SETTLE wake once; a cancelled subscriber never."""
    watcher = MailWatcher(clock)
    calls = []
    sub = watcher.subscribe("alice", lambda: calls.append(1))
    other = watcher.subscribe("bob", lambda: calls.append(2))
    watcher.changed("alice")
    watcher.changed("alice")
    clock.advance(MailWatcher.SETTLE)
    assert calls == [1]
    other.cancel()
    watcher.changed("bob")
    clock.advance(1)
    assert calls == [1]
    sub.cancel()
    assert watcher._by_user == {}

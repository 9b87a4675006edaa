"""
The mail round trip through every selected-state command: APPEND, SELECT,
FETCH, STORE, SEARCH, COPY, MOVE, EXPUNGE, CLOSE (RFC 3501 sections 6.3
and 6.4, UIDPLUS RFC 4315, MOVE RFC 6851), on each store.
"""

MSG = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: Bob <bob@example.org>\r\n"
    b"Subject: Hello quokka\r\n"
    b"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n"
    b"Message-ID: <1@example.org>\r\n"
    b"\r\n"
    b"Hi Bob, this is the body.\r\n"
)


def append(conv, tag, mailbox, data=MSG, flags=""):
    conv.send(f"{tag} APPEND {mailbox} {flags}{{{len(data)}+}}\r\n".encode() + data + b"\r\n")
    lines = conv.lines()
    assert lines[-1].startswith(f"{tag} OK [APPENDUID "), lines
    return lines[-1]


def test_append_then_select(authed):
    """APPEND answers APPENDUID; SELECT then reports the message and the UID state."""
    first = append(authed, "a1", "INBOX")
    second = append(authed, "a2", "INBOX", flags="(\\Seen) ")
    uv, uid1 = first.split()[3], int(first.split()[4].rstrip("]"))
    assert int(second.split()[4].rstrip("]")) == uid1 + 1
    authed.script(
        f"""
        C: s1 SELECT INBOX
        S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)
        S: * 2 EXISTS
        S: * {{{{\\d}}}} RECENT
        S: * OK [UNSEEN 1] First unseen.
        S: * OK [UIDVALIDITY {uv}] UIDs valid
        S: * OK [UIDNEXT {uid1 + 2}] Predicted next UID
        S: * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted.
        S: * OK [HIGHESTMODSEQ {{{{\\d+}}}}] Highest
        S: s1 OK [READ-WRITE] SELECT completed
        """
    )


def test_fetch_body_sets_seen(authed):
    """BODY[] without PEEK returns the exact bytes and sets \\Seen, reported in FLAGS."""
    append(authed, "a1", "INBOX")
    authed.ok("s1 SELECT INBOX")
    authed.send(b"f1 FETCH 1 (BODY[] FLAGS)\r\n")
    out = authed.output()
    assert b"{%d}\r\n" % len(MSG) + MSG in out
    assert b"\\Seen" in out
    assert out.endswith(b"f1 OK FETCH completed\r\n")
    lines = authed.ok("f2 FETCH 1 FLAGS")
    # The message arrived before SELECT: this session is the first to see it.
    assert lines[0] == "* 1 FETCH (FLAGS (\\Seen \\Recent))"


def test_fetch_peek_keeps_unseen(authed):
    """BODY.PEEK[HEADER.FIELDS] returns the field and leaves \\Seen unset."""
    append(authed, "a1", "INBOX")
    authed.ok("s1 SELECT INBOX")
    authed.send(b"f1 UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)] RFC822.SIZE)\r\n")
    out = authed.output()
    assert b"Subject: Hello quokka\r\n\r\n" in out
    assert b"RFC822.SIZE %d" % len(MSG) in out
    assert b"UID 1" in out
    assert authed.ok("f2 FETCH 1 FLAGS")[0] == "* 1 FETCH (FLAGS (\\Recent))"


def test_store_and_search(selected):
    """STORE +FLAGS reports new flags; SEARCH finds by flag, header and body text."""
    append(selected, "a1", "INBOX")
    append(selected, "a2", "INBOX", data=MSG.replace(b"quokka", b"wombat"))
    selected.ok("n1 NOOP")
    selected.script(
        """
        C: t1 STORE 1 +FLAGS (\\Flagged $Work)
        S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work)
        S: * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work \\*)] Flags permitted.
        S: * 1 FETCH (FLAGS (\\Flagged \\Recent $Work))
        S: t1 OK STORE completed
        C: t2 SEARCH FLAGGED
        S: * SEARCH 1
        S: t2 OK SEARCH completed
        C: t3 SEARCH SUBJECT wombat
        S: * SEARCH 2
        S: t3 OK SEARCH completed
        C: t4 UID SEARCH BODY "this is the body"
        S: * SEARCH 1 2
        S: t4 OK UID SEARCH completed
        C: t5 STORE 1:2 -FLAGS.SILENT (\\Flagged)
        S: t5 OK STORE completed
        C: t6 SEARCH FLAGGED
        S: * SEARCH
        S: t6 OK SEARCH completed
        """
    )


def test_copy_move_expunge(selected):
    """COPY/MOVE answer COPYUID; MOVE expunges the source; EXPUNGE removes \\Deleted."""
    append(selected, "a1", "INBOX")
    append(selected, "a2", "INBOX")
    append(selected, "a3", "INBOX")
    selected.ok("n1 NOOP")
    selected.ok("c0 CREATE Archive")
    lines = selected.ok("c1 COPY 1 Archive")
    assert lines[-1].startswith("c1 OK [COPYUID ")
    assert lines[-1].split()[4:6] == ["1", "1]"]
    lines = selected.ok("m1 UID MOVE 2 Archive")
    assert lines[0].startswith("* OK [COPYUID ") and lines[0].split()[4:6] == ["2", "2]"]
    assert lines[1] == "* 2 EXPUNGE"
    selected.script(
        """
        C: d1 STORE 1 +FLAGS.SILENT (\\Deleted)
        S: d1 OK STORE completed
        C: e1 EXPUNGE
        S: * 1 EXPUNGE
        S: e1 OK EXPUNGE completed
        C: st STATUS Archive (MESSAGES UIDNEXT)
        S: * STATUS Archive (MESSAGES 2 UIDNEXT 3)
        S: st OK STATUS completed
        """
    )


def test_copy_to_missing_mailbox_is_trycreate(selected):
    """RFC 3501 6.4.7: COPY to a mailbox that does not exist says TRYCREATE."""
    append(selected, "a1", "INBOX")
    selected.ok("n1 NOOP")
    lines = selected.transact("c1 COPY 1 Nowhere")
    assert lines[-1].startswith("c1 NO [TRYCREATE]")


def test_other_session_changes_reach_view(selected, new_conv):
    """Another session's APPEND, flag change and expunge reach this one at NOOP."""
    other = new_conv()
    other.login()
    append(other, "a1", "INBOX")
    assert selected.ok("n1 NOOP")[:2] == ["* 1 EXISTS", "* 1 RECENT"]
    other.ok("s1 SELECT INBOX")
    other.ok("t1 STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert selected.ok("n2 NOOP")[0] == "* 1 FETCH (FLAGS (\\Deleted \\Recent))"
    other.ok("e1 EXPUNGE")
    # RFC 3501 7.4.1: no EXPUNGE while answering FETCH; it waits for NOOP.
    assert not any("EXPUNGE" in l for l in selected.transact("f1 FETCH 1 FLAGS"))
    assert selected.ok("n3 NOOP")[0] == "* 1 EXPUNGE"


def test_store_reports_others_changes_from_its_own_sync(selected, new_conv):
    """
    STORE syncs with the store once, after its commit, and that sync
    (not a second listing) brings what other sessions changed before it
    into this STORE's answer; a change made after it waits for the next
    command.
    """
    append(selected, "a1", "INBOX")
    append(selected, "a2", "INBOX")
    selected.ok("n1 NOOP")
    other = new_conv()
    other.login()
    other.ok("s1 SELECT INBOX")
    other.ok("t1 STORE 2 +FLAGS.SILENT (\\Deleted)")
    mailbox = selected.proto.selected.mailbox
    calls = []
    real_sync = mailbox.sync

    def counting_sync():
        calls.append(1)
        return real_sync()

    mailbox.sync = counting_sync
    lines = selected.ok("t2 STORE 1 +FLAGS.SILENT (\\Flagged)")
    assert lines[0].startswith("* 2 FETCH (FLAGS (\\Deleted")
    assert len(calls) == 1
    assert selected.proto.selected.synced is None  # applied once, then gone
    other.ok("t3 STORE 2 -FLAGS.SILENT (\\Deleted)")
    assert selected.ok("n2 NOOP")[0].startswith("* 2 FETCH (FLAGS (")
    assert len(calls) == 2


def test_a_stale_commit_snapshot_is_never_applied(selected, new_conv):
    """
    The snapshot a command's flag commit synced to is applied by that
    command only: one left over (a command that failed after its commit)
    is dropped before the next command, which lists the store itself.
    """
    append(selected, "a1", "INBOX")
    selected.ok("n1 NOOP")
    view = selected.proto.selected
    stale = view.mailbox.sync()
    other = new_conv()
    other.login()
    append(other, "a2", "INBOX")
    view.synced = stale
    assert selected.ok("n2 NOOP")[:1] == ["* 2 EXISTS"]


def test_idle_reports_new_mail(selected, new_conv):
    """IDLE reports an APPEND from another session at the next poll; DONE ends it."""
    selected.send(b"i1 IDLE\r\n")
    assert selected.lines() == ["+ idling"]
    other = new_conv()
    other.login()
    append(other, "a1", "INBOX")
    selected.clock.advance(selected.context.limits.idle_poll_interval)
    assert selected.lines() == ["* 1 EXISTS", "* 1 RECENT"]
    selected.send(b"DONE\r\n")
    assert selected.lines() == ["i1 OK IDLE terminated"]


def test_idle_woken_at_once_by_another_session_of_the_process(selected, new_conv):
    """
    Issue 14: an APPEND by another session of the same process (all of a
    user's sessions share a worker) is reported to IDLE at once, without
    waiting for the poll; a change to another mailbox wakes nothing.
    """
    selected.send(b"i1 IDLE\r\n")
    assert selected.lines() == ["+ idling"]
    other = new_conv()
    other.login()
    other.ok("c1 CREATE Other")
    append(other, "a0", "Other")
    assert selected.lines() == []
    append(other, "a1", "INBOX")
    assert selected.lines() == ["* 1 EXISTS", "* 1 RECENT"]
    selected.send(b"DONE\r\n")
    assert selected.lines() == ["i1 OK IDLE terminated"]


def test_list_and_subscriptions(authed):
    """LIST shows INBOX and created folders with CHILDREN attributes; LSUB the subscribed."""
    authed.ok("c1 CREATE Work/Projects")
    authed.ok("c2 CREATE &ANw-n&AO8-code")
    lines = authed.ok('l1 LIST "" "*"')
    names = [l.rsplit(" ", 1)[1] for l in lines[:-1]]
    assert names == ["INBOX", "Work", "Work/Projects", "&ANw-n&AO8-code"]
    assert "\\HasChildren" in lines[1]
    authed.ok("u1 SUBSCRIBE Work/Projects")
    assert authed.ok('l2 LSUB "" "*"')[0] == '* LSUB () "/" Work/Projects'
    assert authed.ok('l3 LIST "" ""')[0] == '* LIST (\\Noselect) "/" ""'


def test_mailbox_name_escape_refused(authed):
    """Names that would leave the mail root are refused with NO [CANNOT]."""
    for name in ["../etc", "a/../../b", "/abs", "~root"]:
        lines = authed.transact(f'c1 CREATE "{name}"')
        assert lines[-1].startswith("c1 NO [CANNOT]"), (name, lines)


def _count_trips(conv, monkeypatch) -> list:
    """The blocking calls C{conv}'s session hands to the storage pool from now on."""
    trips = []
    real_run = type(conv.proto).run

    def counting_run(self, fn, *args, **kwargs):
        trips.append(fn)
        return real_run(self, fn, *args, **kwargs)

    monkeypatch.setattr(type(conv.proto), "run", counting_run)
    return trips


def test_append_is_one_storage_trip(authed, monkeypatch):
    """
    APPEND does its blocking work (target check, assembly, quota, commit)
    in one call into the storage pool: each trip costs a queue, a thread
    wake-up and a coroutine step, about as much as the append itself for
    a small message.  The sync of the selected mailbox after it is a trip
    of its own; with nothing selected there is none.
    """
    trips = _count_trips(authed, monkeypatch)
    append(authed, "a1", "INBOX")
    assert len(trips) == 1
    authed.send(b"a2 APPEND Nowhere {3+}\r\nabc\r\n")
    assert authed.lines()[-1].startswith("a2 NO [TRYCREATE] ")
    assert len(trips) == 2


def test_select_opens_and_syncs_in_one_storage_trip(authed, monkeypatch):
    """
    SELECT opens the mailbox and makes its first sync in one trip into the
    storage pool; the flag index it builds for the first SEARCH costs a
    trip of its own only for a large mailbox.  A SELECT of a missing
    mailbox leaves nothing open.
    """
    from imapd.commands import select

    append(authed, "a1", "INBOX")
    append(authed, "a2", "INBOX")
    trips = _count_trips(authed, monkeypatch)
    authed.ok("s1 SELECT INBOX")
    assert len(trips) == 1
    assert authed.proto.selected._base._index is not None
    monkeypatch.setattr(select, "_INLINE_INDEX", 1)
    authed.ok("s3 SELECT INBOX")
    assert len(trips) == 4  # the close of the first, the open, the index
    assert authed.transact("s2 SELECT Nowhere")[-1].startswith("s2 NO ")
    assert authed.transact("f1 FETCH 1 FLAGS")[-1].startswith("f1 BAD ")


def test_fetch_of_flags_is_answered_without_a_storage_trip(selected, monkeypatch):
    """
    UID, FLAGS and MODSEQ come from the session's view: a FETCH of only
    those (a client refreshing its flags) needs no trip into the storage
    pool for its answer; the sync after the command is the one trip.  A
    FETCH that reads the message still goes to the pool.
    """
    append(selected, "a1", "INBOX")
    append(selected, "a2", "INBOX", flags="(\\Seen) ")
    selected.ok("n1 NOOP")
    trips = _count_trips(selected, monkeypatch)
    lines = selected.ok("f1 UID FETCH 1:* (UID FLAGS)")
    assert [l.split(" FLAGS ")[0] for l in lines[:-1]] == ["* 1 FETCH (UID 1", "* 2 FETCH (UID 2"]
    assert "\\Seen" in lines[1]
    assert len(trips) == 1
    lines = selected.ok("f2 FETCH 2 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert "Subject: Hello quokka" in "".join(lines)
    assert len(trips) == 3


def test_disconnect_closes_mailbox_and_account_in_one_storage_trip(selected, monkeypatch):
    """
    A dropped connection closes its selected mailbox and logs its account
    out in one trip into the storage pool; a mailbox that fails to close
    still lets the account log out, and the failure is logged.
    """
    from twisted.logger import globalLogPublisher

    account = selected.proto.account
    mailbox = selected.proto.selected.mailbox
    calls = []

    def broken_close():
        calls.append("close")
        raise OSError("close failed")
    monkeypatch.setattr(mailbox, "close", broken_close)
    monkeypatch.setattr(account, "logout", lambda: calls.append("logout"))
    trips = _count_trips(selected, monkeypatch)
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        selected.proto.connectionLost(None)
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert len(trips) == 1
    assert calls == ["close", "logout"]
    failures = [e for e in events if e.get("log_failure") is not None]
    assert len(failures) == 1 and "close failed" in str(failures[0]["log_failure"].value)


def test_append_with_a_bad_flag_into_a_missing_mailbox_is_trycreate(authed):
    """The target is checked first: a bad flag into a missing mailbox is TRYCREATE, not BAD."""
    authed.send(b"a1 APPEND Nowhere (\\Bogus) {3+}\r\nabc\r\n")
    assert authed.lines()[-1].startswith("a1 NO [TRYCREATE] ")
    authed.send(b"a2 APPEND INBOX (\\Bogus) {3+}\r\nabc\r\n")
    assert authed.lines()[-1].startswith("a2 BAD ")

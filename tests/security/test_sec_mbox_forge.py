# -*- test-case-name: tests.security.test_sec_mbox_forge -*-
"""
Issue 18 item 6: message content must not forge mbox state.

Every control byte (0x00-0x1f, 0x7f) in front of, inside and after the
names of the fields the mbox keeps IMAP state in, under every line-ending
mix (CRLF, LF, bare CR, mixed), and a header whose empty line is C{\\n\\n}
inside a CRLF message: appended in one transaction (a MULTIAPPEND), each
message reads back as appended (CRLF form, the stores' contract: bare LF
becomes CRLF), with the UID announced for it and only the flags given;
again after a "restart" with the index removed and a full re-parse.
"""

from __future__ import annotations

import os
import shutil

from storage.crlf import to_crlf
from storage.mbox.store import MboxStore

CONTROLS = [bytes([c]) for c in range(0x20)] + [b"\x7f"]
EOLS = {
    "crlf": lambda lines: b"\r\n".join(lines),
    "lf": lambda lines: b"\n".join(lines),
    "cr": lambda lines: b"\r".join(lines),
    "mixed": lambda lines: b"".join(
        line + (b"\r\n", b"\n", b"\r", b"\r\r\n")[i % 4] for i, line in enumerate(lines)),
}
FORGED = [b"X-UID: 1", b"Status: RO", b"X-Status: DFAT", b"X-Keywords: $Forged",
          b"Content-Length: 0", b"X-IMAPbase: 1 4000000000 $Forged", b"X-IMAP: 1 7"]


def _messages():
    """(label, bytes) of every forging attempt."""
    out = []
    for c in CONTROLS:
        for eol, join in EOLS.items():
            lines = [b"Subject: ctl %02x %s" % (ord(c), eol.encode())]
            for f in FORGED:
                name, value = f.split(b":", 1)
                lines += [c + f, name + c + b":" + value, name + b":" + c + value,
                          f + c]
            lines += [b"X-IMAPD-Orig-X-UID: 9", b"", b"body " + c, b"X-UID: 3", b"end"]
            out.append(join(lines) + b"\r\n")
    # The first header line continued (leading blank), and the empty line
    # of the header written as LF inside a CRLF message (with a CR before
    # a CRLF, which keeps the message in CRLF on disk).
    out.append(b" X-UID: 1\r\nStatus: RO\r\n\r\nbody\r\n")
    out.append(b"Subject: a\r\r\nX-A: b\n\nX-UID: 2\r\nX-Keywords: $Forged\r\n"
               b"Status: RO\r\nX-Status: DF\r\n\r\nbody\r\n")
    out.append(b"Subject: a\r\nX-A: b\n\nX-UID: 2\r\nX-Status: D\r\n\r\nbody\r\n")
    out.append(b"Subject: a\r\n\n\r\nX-UID: 2\r\n")
    out.append(b"X-UID: 5")
    # All header, its last line a lone CR (found by fuzzing: the line end
    # added for it made an empty line, which ended the header early).
    out += [b"\r", b"Subject: x\n\r", b"Subject: x\r"]
    return out


def _store(tmp_path, index: bool = True) -> MboxStore:
    root = os.path.join(str(tmp_path), "mail")
    os.makedirs(root, exist_ok=True)
    idx = os.path.join(str(tmp_path), "index")
    return MboxStore(root, "user", fsync=False, index_dir=idx if index else None)


def _served(data: bytes) -> bytes:
    """
    What a store serves for C{data}: its CRLF form (the stores' contract,
    L{storage.interfaces.IMailbox.read}); a message that is all header with
    no line end after its last line gets one (RFC 5322 section 2.2: a field
    ends in CRLF; the mbox has no way to keep a line-end-less header apart
    from the separator's blank line).
    """
    all_header = b"\n\n" not in data and b"\n\r\n" not in data and data[:1] != b"\n" \
        and data[:2] != b"\r\n"
    if data and all_header and not data.endswith(b"\n"):
        data += b"\r\n"
    return to_crlf(data)


def _check(box, expected):
    snap = box.sync()
    got = {m.uid: m for m in snap.messages}
    assert sorted(got) == sorted(expected)
    for uid, (data, flags) in expected.items():
        assert got[uid].flags == flags, (uid, data[:60], got[uid].flags)
        body = box.read(uid)
        assert body == _served(data), (uid, data[:60])
        assert got[uid].size == len(body)


def test_no_message_content_forges_state(tmp_path):
    """
    132 forging messages plus the header-end cases, in batches of 12 per
    transaction (MULTIAPPEND): each keeps its announced UID, its own flags
    (given: every third has \\Answered, the rest none) and its bytes,
    also after the index is removed and the mbox is parsed afresh.
    """
    store = _store(tmp_path)
    box = store.open("INBOX")
    messages = _messages()
    expected = {}
    for i in range(0, len(messages), 12):
        t = box.transaction()
        batch = messages[i:i + 12]
        flags = [frozenset({"\\Answered"}) if (i + j) % 3 == 0 else frozenset()
                 for j in range(len(batch))]
        for data, f in zip(batch, flags):
            t.append(data, f)
        result = t.commit()
        assert len(result.appended) == len(batch)
        expected.update({uid: (data, f) for uid, data, f in zip(result.appended, batch, flags)})
    _check(box, expected)
    # An EXPUNGE must remove nothing: no message became \Deleted.
    t = box.transaction()
    for uid, (_, f) in expected.items():
        if "\\Deleted" in f:
            t.expunge(uid)
    t.commit()
    # "Restart": a new store object, the index directory gone.
    shutil.rmtree(os.path.join(str(tmp_path), "index"), ignore_errors=True)
    _check(_store(tmp_path).open("INBOX"), expected)
    _check(_store(tmp_path, index=False).open("INBOX"), expected)
    # A flag change forces the flag blocks to be written again (in place
    # or by a rewrite): still nothing forged.
    t = box.transaction()
    first = min(expected)
    t.set_flags(first, frozenset({"\\Seen", "$Mine"}))
    t.commit()
    expected[first] = (expected[first][0], frozenset({"\\Seen", "$Mine"}))
    _check(_store(tmp_path, index=False).open("INBOX"), expected)


def test_daemon_multiappend_cannot_forge(tmp_path, tls_files):
    """
    The real daemon on an mbox store: a MULTIAPPEND of three messages
    whose headers carry forged state behind control bytes gets the UIDs
    it announced, only the flags given, its bytes back, survives EXPUNGE,
    and reads the same after a restart with the index removed.
    """
    import re

    from sec_content_helpers import Client, start_server

    forged = [
        b"Subject: one\r\n\x0bX-UID: 1\r\n\x0cStatus: RO\r\n\r\nbody one\r\n",
        b"Subject: two\r\n\x0bX-Status: DF\r\n\x0bX-Keywords: $Forged\r\n\r\nbody two\r\n",
        b"Subject: three\r\r\nX-A: b\n\nX-UID: 1\r\nX-Status: D\r\n\r\nbody three\r\n",
    ]
    settings = {"mail": {"location": f"mbox:{tmp_path}/mail/%u:INBOX={tmp_path}/spool/%u"}}
    (tmp_path / "spool").mkdir()

    def check(server) -> None:
        c = Client(server)
        assert b"OK" in c.login()
        assert b"OK" in c.command("s", b"SELECT INBOX")
        out = c.command("f", b"UID FETCH 1:* (FLAGS BODY.PEEK[])")
        got = {}
        for m in re.finditer(rb"UID (\d+) FLAGS \(([^)]*)\) BODY\[\] \{(\d+)\}\r\n", out):
            start = m.end()
            flags = b" ".join(f for f in m[2].split() if f != b"\\Recent")
            got[int(m[1])] = (flags, out[start:start + int(m[3])])
        assert got == {uids[0]: (b"\\Seen", forged[0]), uids[1]: (b"", forged[1]),
                       uids[2]: (b"\\Flagged", to_crlf(forged[2]))}, out
        c.command("e", b"EXPUNGE")
        assert b"* 3 EXISTS" in c.command("n", b"NOOP") + c.command("s2", b"SELECT INBOX")
        c.close()

    server = start_server(tmp_path, tls_files, settings)
    try:
        c = Client(server)
        assert b"OK" in c.login()
        cmd = b"a APPEND INBOX"
        for data, flags in zip(forged, (b"(\\Seen)", b"()", b"(\\Flagged)")):
            cmd += b" " + flags + b" {%d+}\r\n" % len(data) + data
        out = c.command("a", cmd[2:])
        m = re.search(rb"APPENDUID \d+ (\d+):(\d+)", out)
        assert m, out
        uids = list(range(int(m[1]), int(m[2]) + 1))
        assert len(uids) == 3
        c.close()
        check(server)
    finally:
        server.daemon.stop()
    import shutil
    shutil.rmtree(tmp_path / "index", ignore_errors=True)
    shutil.rmtree(tmp_path / "data", ignore_errors=True)
    server = start_server(tmp_path, tls_files, settings)
    try:
        check(server)
    finally:
        server.daemon.stop()

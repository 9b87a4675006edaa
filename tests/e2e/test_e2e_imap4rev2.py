"""
End-to-end IMAP4rev2 (RFC 9051) against the real daemon (storage thread
pool and all), on Maildir and mbox: a client that enables IMAP4rev2 and one
that does not share a mailbox tree.  The first names mailboxes in UTF-8 and
gets ESEARCH, the LIST in SELECT and no RECENT; the second sees the same
mailbox in modified UTF-7 and IMAP4rev1 answers; on disk the name is the
modified UTF-7 one either way (the Dovecot layout does not depend on
which client created it).
"""

from __future__ import annotations

import os

import pytest

from e2e_helpers import LineClient, start_server


@pytest.mark.parametrize("kind", ["maildir", "mbox"])
def test_rev2_and_rev1_clients_side_by_side(tmp_path, tls_files, kind):
    settings = {"mail": {"location": f"{kind}:{tmp_path}/mail/%u", "index_dir": "index"}}
    server = start_server(tmp_path, tls_files, settings)
    rev2 = rev1 = None
    try:
        rev2 = LineClient(server)
        caps = rev2.cmd("CAPABILITY")[0].split()
        assert "IMAP4rev1" in caps and "IMAP4rev2" in caps
        assert rev2.cmd("ENABLE IMAP4rev2") == ["* ENABLED IMAP4rev2"]
        rev2.cmd('CREATE "Entwürfe"')
        msg = b"From: e2e@example.org\r\nSubject: hello\r\n\r\nbody\r\n"
        rev2.cmd('APPEND "Entwürfe"', msg)
        rev2.cmd('APPEND "Entwürfe"', msg)
        sel = rev2.cmd('SELECT "Entwürfe"')
        assert "* 2 EXISTS" in sel
        assert not [l for l in sel if "RECENT" in l or "[UNSEEN" in l], sel
        assert [l for l in sel if l.startswith("* LIST (") and l.endswith('"/" "Entwürfe"')], sel
        assert rev2.cmd("UID SEARCH ALL") == ['* ESEARCH (TAG "r7") UID ALL 1:2']
        assert rev2.cmd("FETCH 1:* (FLAGS)") == ["* 1 FETCH (FLAGS ())", "* 2 FETCH (FLAGS ())"]

        rev1 = LineClient(server)
        listed = rev1.cmd('LIST "" "*"')
        assert any(l.endswith('"/" Entw&APw-rfe') for l in listed), listed
        sel = rev1.cmd("EXAMINE Entw&APw-rfe")
        assert "* 0 RECENT" in sel and not [l for l in sel if l.startswith("* LIST")], sel
        assert rev1.cmd("SEARCH ALL") == ["* SEARCH 1 2"]

        on_disk = [name for _dirpath, dirs, files in os.walk(tmp_path / "mail")
                   for name in dirs + files]
        assert any("Entw&APw-rfe" in name for name in on_disk), on_disk
        assert not any("Entwürfe" in name for name in on_disk), on_disk
    finally:
        for client in (rev2, rev1):
            if client is not None:
                client.close()
        server.daemon.stop()

"""
End-to-end NOTIFY (RFC 5465) and CONTEXT=SEARCH updates (RFC 5267)
against the real daemon, on Maildir and mbox: with the storage thread
pool and the real reactor, a session that set NOTIFY hears, with no
command of its own in progress, about another session's new mail (in
this process: at once) and about mail written by another process (a
store of its own, as an MDA: at the next re-check, here every second).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from e2e_helpers import REPO, LineClient, start_server


@pytest.mark.parametrize("kind", ["maildir", "mbox"])
def test_notify_and_search_updates(tmp_path, tls_files, kind):
    """Both sources of change reach the NOTIFY session unasked, in RFC order."""
    location = f"{kind}:{tmp_path}/mail/%u"
    settings = {"mail": {"location": location, "index_dir": "index"},
                "limits": {"notify_poll_interval": 1.0}}
    server = start_server(tmp_path, tls_files, settings)
    try:
        a, b = LineClient(server), LineClient(server)
        a.cmd("CREATE Other")
        a.append(1)
        a.cmd("SELECT INBOX")
        assert a.cmd("UID SEARCH RETURN (UPDATE) ALL") == ['* ESEARCH (TAG "r4") UID']
        a.cmd("NOTIFY SET (SELECTED (MessageNew (UID) MessageExpunge)) "
              "(PERSONAL (MessageNew MessageExpunge))")

        b.append(2)
        got = a.unsolicited(4)
        assert got[0] == "* 2 EXISTS" and got[2:] == [
            "* 2 FETCH (UID 2)", '* ESEARCH (TAG "r4") UID ADDTO (0 2)'], got
        b.append(3, mailbox="Other")
        assert a.unsolicited(1) == ["* STATUS Other (MESSAGES 1 UIDNEXT 2 UNSEEN 1)"]

        # Another process writes to Other with a store of its own.
        code = ("import sys\n"
                "from storage.registry import open_store\n"
                "box = open_store(sys.argv[1], sys.argv[2], None, sys.argv[3]).open('Other')\n"
                "t = box.transaction()\n"
                "t.append(b'Subject: mda\\r\\n\\r\\nbody\\r\\n', ())\n"
                "t.commit()\n")
        subprocess.run([sys.executable, "-c", code, location, server.user,
                        str(tmp_path / "index-mda")], check=True, timeout=60,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))
        assert a.unsolicited(1) == ["* STATUS Other (MESSAGES 2 UIDNEXT 3 UNSEEN 2)"]
        # The session still answers commands as usual afterwards.
        assert a.cmd("NOTIFY NONE") == []
        a.close()
        b.close()
    finally:
        server.daemon.stop()

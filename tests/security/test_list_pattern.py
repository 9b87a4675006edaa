"""
Issue 18 item 1: a LIST/LSUB pattern built to make a backtracking matcher
explode (C{"*a*a*a*a*a*a*ab"} against one 200-character mailbox name)
used to freeze every session for minutes.  Now every form of LIST
answers at once and another client's NOOP is not held up.
"""

from security_helpers import Prober, RawSession, login

EVIL = "*a*a*a*a*a*a*ab"


def test_evil_pattern_does_not_freeze(imapd_server):
    """LIST, LSUB and LIST-EXTENDED with the evil pattern answer in seconds; a second client keeps being served."""
    s = RawSession(imapd_server.port)
    login(s, imapd_server)
    name = "a" * 200
    s.ok("c1", f"CREATE {name}")
    s.ok("c2", f"SUBSCRIBE {name}")
    with Prober(imapd_server, limit=10) as probe:
        for tag, command in [
            ("t1", f'LIST "" "{EVIL}"'),
            ("t2", f'LSUB "" "{EVIL}"'),
            ("t3", f'LIST (SUBSCRIBED RECURSIVEMATCH) "" ("{EVIL}" "%a%a%a%a%a%a%ab") '
                   f'RETURN (CHILDREN)'),
        ]:
            data = s.command(tag, command, timeout=10)
            assert data.endswith(f"{tag} OK LIST completed\r\n".encode()
                                 if tag != "t2" else b"t2 OK LSUB completed\r\n"), data
            assert name.encode() not in data
        # The matcher still matches.
        assert name.encode() in s.ok("t4", 'LIST "" "*a*a*a*a*a*a*a"')
    assert probe.worst < 5.0, f"a second client waited {probe.worst:.1f}s for NOOP"
    s.close()


def test_pattern_limits(imapd_server):
    """An overlong pattern is a BAD [LIMIT], not work."""
    s = RawSession(imapd_server.port)
    login(s, imapd_server)
    data = s.command("t1", 'LIST "" "' + "*a" * 1500 + '"')
    assert data.startswith(b"t1 BAD [LIMIT]"), data
    s.close()

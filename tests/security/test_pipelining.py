"""
Issue 18 item 3: more than about 240 pipelined commands on one
connection hit Python's recursion limit in the command pump and the
connection hung until the idle timeout.  Real clients pipeline: 10,000
commands sent at once are all answered, in order, before and after login,
with and without COMPRESS.
"""

import threading

import pytest

from security_helpers import Attacker, login

COUNT = 10_000


@pytest.mark.parametrize("mode", ["before login", "after login", "compressed"])
def test_ten_thousand_pipelined(imapd_server, mode):
    """Every one of 10,000 pipelined NOOPs gets its tagged OK, in order, within a minute."""
    s = Attacker(imapd_server.port, timeout=60)
    if mode != "before login":
        login(s, imapd_server)
    if mode == "compressed":
        s.compress()
    payload = b"".join(b"n%d NOOP\r\n" % i for i in range(COUNT))
    # Send from a thread: the server may answer before it has read all.
    sender = threading.Thread(target=s.send_raw, args=(payload,), daemon=True)
    sender.start()
    lines = s.read_lines(COUNT, timeout=60)
    sender.join(10)
    assert lines == [b"n%d OK NOOP completed" % i for i in range(COUNT)]
    s.close()

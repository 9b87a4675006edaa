"""
URLAUTH (RFC 4467) through the real daemon: a URL alice makes is fetched
by the users its access identifier names, the owner being looked up in
the passwd-file and her store opened for reading in the storage pool, and
C{submit+} URLs by the login set as C{[urlauth] submit_user}.
"""

from __future__ import annotations

import imaplib
import re

from e2e_helpers import PASSWORD, USER, start_server

USERS = {"bob": "pw-bob", "carol": "pw-carol", "submit": "pw-submit"}
MESSAGE = b"From: alice@example.org\r\nSubject: burl\r\n\r\nthe body\r\n"


class Client:
    """Plain IMAP on loopback (allowed there), raw commands and lines."""

    def __init__(self, server, user, password):
        self.imap = imaplib.IMAP4(server.host, server.port, timeout=60)
        self.imap.login(user, password)
        self.n = 0

    def cmd(self, text):
        """Untagged lines and literals of one command; asserts OK."""
        self.n += 1
        tag = f"u{self.n}"
        self.imap.send(f"{tag} {text}\r\n".encode())
        out = []
        while True:
            line = self.imap.readline()
            if line.startswith(tag.encode() + b" "):
                assert line.startswith(tag.encode() + b" OK"), (text, line, out)
                return out
            out.append(line)
            m = re.search(rb"\{(\d+)\}\r\n$", line)
            if m:
                out.append(self.imap.read(int(m.group(1))))

    def fetch(self, url):
        """The data URLFETCH gives for C{url}, or None for NIL."""
        out = self.cmd(f'URLFETCH "{url}"')
        if out[0] == f'* URLFETCH "{url}" NIL\r\n'.encode():
            return None
        return out[1]

    def close(self):
        self.imap.logout()


def test_urlfetch_by_other_users_and_the_submission_server(tmp_path, tls_files):
    """user+bob, authuser, submit+alice (submit_user set), a missing owner, a forged token, RESETKEY."""
    server = start_server(tmp_path, tls_files, {"urlauth": {"submit_user": "submit"}},
                          users=USERS)
    try:
        alice = Client(server, USER, PASSWORD)
        alice.imap.append("INBOX", None, None, MESSAGE)
        v = re.search(rb"UIDVALIDITY (\d+)", alice.cmd("STATUS INBOX (UIDVALIDITY)")[0]).group(1)
        base = f"imap://{USER}@imapd.test/INBOX;UIDVALIDITY={v.decode()}/;UID=1/;SECTION=TEXT"

        def gen(access):
            line = alice.cmd(f'GENURLAUTH "{base};URLAUTH={access}" INTERNAL')[0]
            return re.fullmatch(rb'\* GENURLAUTH "([^"]+)"\r\n', line).group(1).decode()

        for_bob, for_all, for_submit = gen("user+bob"), gen("authuser"), gen(f"submit+{USER}")
        bob, carol = Client(server, "bob", USERS["bob"]), Client(server, "carol", USERS["carol"])
        submit = Client(server, "submit", USERS["submit"])
        assert bob.fetch(for_bob) == b"the body\r\n"
        assert carol.fetch(for_bob) is None
        assert carol.fetch(for_all) == b"the body\r\n"
        assert submit.fetch(for_submit) == b"the body\r\n"
        assert bob.fetch(for_submit) is None and alice.fetch(for_submit) is None
        assert bob.fetch(for_bob.replace(f"imap://{USER}@", "imap://nobody@")) is None
        forged = for_bob[:-2] + ("00" if not for_bob.endswith("00") else "11")
        assert bob.fetch(forged) is None
        alice.cmd("RESETKEY")
        assert bob.fetch(for_bob) is None and carol.fetch(for_all) is None
        for client in (alice, bob, carol, submit):
            client.close()
    finally:
        server.daemon.stop()

"""WITHIN (RFC 5032): SEARCH YOUNGER / OLDER by INTERNALDATE age in seconds."""


def test_younger_and_older(authed):
    """An old APPEND date is OLDER than an hour; a fresh message is YOUNGER."""
    old = b"Subject: old\r\n\r\nx\r\n"
    new = b"Subject: new\r\n\r\ny\r\n"
    authed.send(b'a1 APPEND INBOX "01-Jan-2001 00:00:00 +0000" {%d+}\r\n%s\r\n' % (len(old), old))
    authed.send(b"a2 APPEND INBOX {%d+}\r\n%s\r\n" % (len(new), new))
    authed.output()
    authed.ok("s1 SELECT INBOX")
    authed.script(
        """
        C: w1 SEARCH OLDER 3600
        S: * SEARCH 1
        S: w1 OK SEARCH completed
        C: w2 UID SEARCH YOUNGER 3600
        S: * SEARCH 2
        S: w2 OK UID SEARCH completed
        """
    )


def test_within_advertised(authed):
    """The capability is listed once logged in."""
    assert "WITHIN" in authed.ok("c1 CAPABILITY")[0].split()

"""
APPENDLIMIT (RFC 7889): the limit is advertised, given by STATUS, and an
APPEND above it is refused with NO [TOOBIG] before any octet is read.
"""

import pytest


@pytest.fixture
def small(server):
    """A server whose literal limit (and so APPENDLIMIT) is 100 octets."""
    import dataclasses

    server.limits = dataclasses.replace(server.limits, max_literal=100)
    return server


def test_advertised_and_status(small, new_conv):
    """CAPABILITY says APPENDLIMIT=100 after login (not before); STATUS APPENDLIMIT gives it too."""
    conv = new_conv()
    assert not any(c.startswith("APPENDLIMIT") for c in conv.ok("c0 CAPABILITY")[0].split())
    conv.login()
    assert "APPENDLIMIT=100" in conv.ok("c1 CAPABILITY")[0].split()
    conv.script(
        """
        C: t1 STATUS INBOX (APPENDLIMIT MESSAGES)
        S: * STATUS INBOX (APPENDLIMIT 100 MESSAGES 0)
        S: t1 OK STATUS completed
        """
    )


def test_append_over_limit_is_toobig(small, new_conv):
    """RFC 7889 section 4: a synchronizing literal over the limit gets NO [TOOBIG], no continuation."""
    conv = new_conv()
    conv.login()
    lines = conv.transact(b"a1 APPEND INBOX {101}")
    assert lines == ["a1 NO [TOOBIG] Literal too big"], lines
    data = b"Subject: x\r\n\r\nsmall\r\n"
    conv.send(b"a2 APPEND INBOX {%d+}\r\n" % len(data) + data + b"\r\n")
    assert conv.lines()[-1].startswith("a2 OK [APPENDUID ")
    conv.script(
        """
        C: t1 STATUS INBOX (MESSAGES)
        S: * STATUS INBOX (MESSAGES 1)
        S: t1 OK STATUS completed
        """
    )

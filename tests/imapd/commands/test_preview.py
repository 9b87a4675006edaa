"""
PREVIEW (RFC 8970): the capability, FETCH PREVIEW and PREVIEW (LAZY) on
each store; the text is kept in the per-node index, so LAZY answers it
once computed and NIL before (section 3 allows NIL for LAZY only).
"""

import pytest

PLAIN = (b"Subject: p\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
         b"Hello   there,\r\n> quoted\r\nCaf\xc3\xa9 time.\r\n")
IMAGE = b"Subject: i\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n"
HTML = b"Subject: h\r\nContent-Type: text/html\r\n\r\n<p>Hi &amp; <b>you</b></p>\r\n"


def test_advertised(authed):
    """RFC 8970 section 2: PREVIEW in the capability list once logged in."""
    assert "PREVIEW" in authed.ok("c1 CAPABILITY")[0].split()


def test_fetch_preview_and_lazy(authed):
    """LAZY is NIL until computed; PREVIEW computes; then LAZY answers from the index."""
    for i, m in enumerate((PLAIN, IMAGE, HTML)):
        authed.append(f"a{i}", m)
    authed.ok("s1 SELECT INBOX")
    authed.script(
        """
        C: f1 FETCH 1:3 (PREVIEW (LAZY))
        S: * 1 FETCH (PREVIEW NIL)
        S: * 2 FETCH (PREVIEW NIL)
        S: * 3 FETCH (PREVIEW NIL)
        S: f1 OK FETCH completed
        C: f2 FETCH 1:3 (UID PREVIEW)
        S: * 1 FETCH (UID 1 PREVIEW {24}
        S: Hello there, Café time.)
        S: * 2 FETCH (UID 2 PREVIEW "")
        S: * 3 FETCH (UID 3 PREVIEW "Hi & you")
        S: f2 OK FETCH completed
        C: f3 FETCH 2:3 (PREVIEW (LAZY))
        S: * 2 FETCH (PREVIEW "")
        S: * 3 FETCH (PREVIEW "Hi & you")
        S: f3 OK FETCH completed
        """
    )


def test_lazy_with_a_message_read_anyway(authed):
    """LAZY beside an item that reads the message computes the preview rather than NIL."""
    authed.append("a1", HTML)
    authed.ok("s1 SELECT INBOX")
    lines = authed.ok("f1 FETCH 1 (BODY.PEEK[TEXT] PREVIEW (LAZY))")
    assert lines[-2].endswith('PREVIEW "Hi & you")'), lines


@pytest.mark.parametrize("store_kind", ["maildir"])
def test_without_index_lazy_computes(server, store_kind):
    """No index directory: the message is read anyway, so LAZY answers too."""
    from tests.imapd.conftest import Conversation

    server.portal.realm._index_dir = None
    conv = Conversation(server, server.reactor)
    conv.output()
    conv.login()
    conv.append("a1", HTML)
    conv.ok("s1 SELECT INBOX")
    assert conv.ok("f1 FETCH 1 (PREVIEW (LAZY))")[0] == '* 1 FETCH (PREVIEW "Hi & you")'

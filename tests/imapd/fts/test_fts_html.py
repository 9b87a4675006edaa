"""
HTML parts are searched as their text (RFC 3501 section 6.4.4: BODY and
TEXT look in the "text" of the message; L{imapd.message._html}), by the
scan and by the full-text index alike, on both stores: a word split by a
tag or written with entities is found, a tag name or an attribute value
is not.  And an index file written before (schema 1001, rows holding the
markup) is built again rather than answering from the markup.
"""

from __future__ import annotations

import sqlite3

import pytest

from tests.imapd.fts import fts_corpus
from tests.imapd.fts.test_fts_recovery import _index, _reads

MESSAGES = [
    # 1: HTML, quoted-printable.
    b"From: a@example.org\r\nSubject: html\r\nContent-Type: text/html; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"<html><head><style>p { font-family: Verdana }</style></head><body>\r\n"
    b"<p>The wo<b>rd</b>s are here: caf&eacute;, cr&#232;me &amp; co=\r\n"
    b"de.</p><!-- a hidden remark --><a href=3D\"http://zebra.example/track\">click</a>\r\n"
    b"<script>var hidden =3D 'giraffe';</script></body></html>\r\n",
    # 2: plain text with markup in it, kept as written.
    b"From: b@example.org\r\nSubject: plain\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    b"plain <b>bold</b> zebra &amp; words\r\n",
    # 3: multipart/alternative, the same text twice.
    b"From: c@example.org\r\nSubject: alt\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: text/plain\r\n\r\nlunch at noon\r\n"
    b"--b\r\nContent-Type: text/html\r\n\r\n<div>lunch</div><div>at&nbsp;noon</div><img alt=sandwich src=s.png>\r\n"
    b"--b--\r\n",
] * 3

#: Program -> UIDs of the first three messages (repeated for the others).
EXPECTED = {
    "BODY words": [1, 2],                      # "wo<b>rd</b>s" is one word
    "TEXT {5+}\r\ncaf\u00e9": [1],            # &eacute;
    "BODY {6+}\r\ncr\u00e8me": [1],           # &#232;
    "BODY code": [1],                         # a QP soft break inside the HTML text
    "BODY {6+}\r\n& code": [1],              # &amp;
    "BODY &amp;": [2],                         # the entity is no text in HTML
    "BODY zebra": [2],                         # an href value is not text
    "BODY href": [],
    "TEXT <b>": [2],                           # a tag is not text in HTML
    "BODY font-family": [],                    # <style>
    "BODY giraffe": [],                        # <script>
    "BODY hidden": [],                         # a comment and a script
    "BODY sandwich": [],                       # an alt attribute
    "BODY {11+}\r\nlunch at no": [3],         # in both parts
    "BODY {10+}\r\nlunchat no": [],           # </div><div> separates
    "BODY {6+}\r\nat noo": [3],              # &nbsp; folds to a space
}

PROGRAMS = list(EXPECTED)


def _answers(conv) -> list[str]:
    return [" ".join(sorted(conv.ok(f"s UID SEARCH CHARSET UTF-8 {p}".encode())[0].split()[2:],
                            key=int)) for p in PROGRAMS]


def _expected() -> list[str]:
    return [" ".join(str(u + 3 * k) for k in range(3) for u in EXPECTED[p]) for p in PROGRAMS]


@pytest.fixture
def box(authed):
    fts_corpus.load(authed, MESSAGES, flag=False)
    return authed


def test_scan_and_index_find_the_text_of_html(box, monkeypatch):
    """The scan (index off), the index built by SEARCH, and by the indexer: the same text."""
    from imapd.fts import FtsSettings
    from imapd.fts.indexer import update_mailbox

    box.proto.context.fts = FtsSettings(enabled=False)
    assert _answers(box) == _expected()
    box.proto.context.fts = FtsSettings()
    assert _answers(box) == _expected()  # the first builds the index
    reads = _reads(box, monkeypatch)
    assert _answers(box) == _expected()
    assert reads == []  # ... which answered all of them
    _index(box).clear()
    account = box.proto.account
    assert update_mailbox(account.store, account.user, account.index_dir, "INBOX").documents \
        == len(MESSAGES)
    assert _answers(box) == _expected()
    assert reads == []


def _write_markup_rows(path: str, version: int) -> None:
    # What schema 1001 wrote: the HTML part's text with its markup.
    from imapd.message import _message
    from imapd.fts.extract import document
    from imapd.message import Message

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_message, "html_text", lambda text: text)
        rows = [(uid, *document(Message(data), 1 << 20))
                for uid, data in enumerate(MESSAGES, 1)]
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM text")
    conn.executemany("INSERT INTO text (rowid, header, body, parts) VALUES (?, ?, ?, ?)", rows)
    conn.execute("PRAGMA user_version=%d" % version)
    conn.commit()
    conn.close()


def test_index_of_the_old_format_is_built_again(box, monkeypatch):
    """
    An index file of schema 1001 (rows with HTML markup) is dropped and
    built again when opened: the answers stay the scan's.  The same rows
    under the current version would answer from the markup, which is
    what the version change prevents.
    """
    from index.fts import FtsIndex

    assert _answers(box) == _expected()  # builds the index
    index = _index(box)
    uidvalidity = box.proto.selected.uidvalidity
    # Control: markup rows read as current give other answers.
    index.close()
    _write_markup_rows(index.path, FtsIndex.schema_version)
    assert _answers(box) != _expected()
    # The file as the previous version left it.
    index.close()
    _write_markup_rows(index.path, 1001)
    reads = _reads(box, monkeypatch)
    assert _answers(box) == _expected()
    assert len(reads) >= len(MESSAGES)  # read, not answered from the old rows
    conn = sqlite3.connect(index.path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == FtsIndex.schema_version == 1002
    conn.close()
    assert len(index.documents(uidvalidity)) == len(MESSAGES)
    reads.clear()
    assert _answers(box) == _expected()
    assert reads == []

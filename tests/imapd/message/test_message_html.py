"""
L{imapd.message._html.html_text}: the text of an HTML part that SEARCH
BODY/TEXT and the full-text index read.  Expected strings are written
out by hand from the rules in the module docstring.
"""

import time

import pytest

from imapd.message import Message
from imapd.message._html import html_text

CASES = [
    # A word split by an inline tag stays one word.
    ("wo<b>rd</b> and <span class=x>ano</span>ther", "word and another"),
    # Entities and character references, named, decimal, hexadecimal.
    ("caf&eacute; &amp; cr&#232;me&nbsp;br&#xFB;l&#xe9;e &lt;b&gt;",
     "café & crème\xa0brûlée <b>"),
    # Block tags end a line: the words on either side are not joined.
    ("one<br>two<p>three</p>four<div>five</div><td>six</td><td>seven",
     "one\ntwo\nthree\nfour\nfive\n\nsix\n\nseven"),
    # Tags, attribute values, comments, declarations, PIs, scripts, styles.
    ('<!DOCTYPE html><?xml version="1.0"?><a href="http://example.org/secret" '
     'title=\'a > b\'>link</a><!-- hidden --><script>var secret = "<b>";</script>'
     "<STYLE>p { color: red }</STYLE >after<img src=x.png alt=picture>",
     "linkafter"),
    # A "<" that starts no tag is text; an entity is not made across a tag.
    ("1 < 2 and 3 <4 </ x &am<b>p; <>", "1 < 2 and 3 <4 </ x &amp; <>"),
    # Unterminated markup runs to the end.
    ("text <!-- never closed", "text "),
    # A quote starts a value only after "=": elsewhere it is a character.
    ('<img src="a.gif"">one<img alt=it\'s>two<p don\'t>three', "onetwo\nthree"),
    # A value's quote never closed: the tag ends at the next ">" (HTML5
    # would run to the end; see the module docstring).
    ("text <a href='never closed>more", "text more"),
    ("text <script>never closed", "text "),
    ("text <b", "text "),
]


@pytest.mark.parametrize("markup, text", CASES)
def test_html_text(markup, text):
    assert html_text(markup) == text


def test_decoded_text_reduces_html_parts_only():
    """A text/html part is read as its text; text/plain is left as written."""
    raw = (b"Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n"
           b"Content-Type: text/plain\r\n\r\nplain <b>kept</b> &amp;\r\n--b\r\n"
           b"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
           b"<p>ht<i>m=\r\nl</i> caf&eacute;</p>\r\n--b--\r\n")
    assert list(Message(raw).decoded_text()) == ["plain <b>kept</b> &amp;", "\nhtml café\n"]


@pytest.mark.parametrize("piece", ["<!--", "<!", "<", "</", "<a ", "<a '>", '<a x=">', "&#",
                                   "&a", "<script></script", "<p>w <b>x</b> &amp; "])
def test_linear_on_hostile_input(piece):
    """
    Pieces repeated into a 400 kB part take about four times as long as
    into 100 kB (the html.parser of Python 3.11 takes over a minute on
    "<!--" * 80000): linear, with a wide margin for a loaded machine.
    """
    def cost(n):
        text = piece * (n // len(piece))
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            html_text(text)
            best = min(best, time.perf_counter() - start)
        return best
    small, large = cost(100_000), cost(400_000)
    assert large < 8 * small + 0.02
    assert large < 2.0

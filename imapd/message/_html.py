# -*- test-case-name: tests.imapd.message.test_message_html -*-
"""
L{html_text}: the text a reader sees in an HTML part, which SEARCH BODY
and TEXT match (RFC 3501 section 6.4.4 asks for the "text" of the
message; markup is not what users search for) and which the full-text
index therefore holds (L{imapd.fts.extract}): both read it through
L{imapd.message.Message.decoded_text}, so index and scan agree.

What is kept, and why:

  - the character data, entities and character references decoded
    (C{&amp;}, C{&nbsp;}, C{&#233;}, C{&#xe9;}) by C{html.unescape}, one
    run of text at a time, so a reference is never made up of pieces on
    either side of a tag;
  - words split by an inline tag stay one word (C{wo<b>rd</b>} is
    "word"), as a browser shows them; a block-level tag (paragraph,
    line break, list item, table cell, heading, ...) ends a line, so the
    words on either side of it are not joined;
  - tags, attribute values (an URL in C{href} is not text: it is not
    shown), comments, declarations, processing instructions and the
    content of C{<script>} and C{<style>} are dropped;
  - a C{<} that starts no tag is text, as in browsers.

Why not C{html.parser}: on this Python its comment and declaration
handling is quadratic (a part made of C{"<!--" * 80000}, 320 kB, takes
over a minute), and SEARCH reads parts an attacker wrote.  This scanner
moves forward only: C{str.find}, anchored matches of patterns with no
nested repetition, and one step per tag, so its work is linear in the
part's size.  What it leaves out of HTML5's tokenizer (RCDATA in
C{<title>} and C{<textarea>}, C{<!-->}, an attribute value whose quote
is never closed, which ends here at the next C{>} rather than at the end
of the document) only makes it see a few more or fewer characters of
text in malformed documents.
"""

from __future__ import annotations

import html
import re

__all__ = ["html_text"]

#: Elements whose start or end ends a line of text (HTML's block-level
#: and line-breaking elements).  Others (C{b}, C{span}, C{a}, C{font},
#: ...) are inline: text on either side runs on.
_BLOCK = frozenset("""
    address article aside blockquote body br caption center dd details dialog
    div dl dt fieldset figcaption figure footer form h1 h2 h3 h4 h5 h6 head
    header hr html legend li main menu nav ol option p pre section summary
    table tbody td tfoot th thead title tr ul
""".split())

#: Elements whose content is not text (a program, a style sheet).
_RAW = frozenset({"script", "style"})

#: A tag name right after "<" or "</" (HTML5 section 13.2.5.6: a letter
#: starts a tag, else the "<" is text).
_TAG_NAME = re.compile(r"[A-Za-z][^\s/>]*")

#: The inside of a tag after its name, up to its ">": a quoted attribute
#: value, which may hold ">" (a quote starts one only right after "=",
#: HTML5 section 13.2.5.36; elsewhere, as in C{src="a""} or C{alt=it's},
#: it is an ordinary character), or other characters.  Nothing follows
#: the repetition, so the match never backtracks into it; a value whose
#: quote is never closed is scanned once, to the last quote of the text,
#: then read as ordinary characters.
_TAG_REST = re.compile(r"""(?:[^>"'=]+|=\s*"[^"]*"|=\s*'[^']*'|[="'])*""")

#: The end of a raw-text element's content, by element name.
_RAW_END = {name: re.compile(r"</%s[\s/>]" % name, re.IGNORECASE) for name in _RAW}


def html_text(text: str) -> str:
    """The text of the HTML document C{text} (see the module docstring)."""
    out: list[str] = []
    n = len(text)
    pos = 0
    while pos < n:
        lt = text.find("<", pos)
        if lt < 0:
            out.append(html.unescape(text[pos:]))
            break
        if lt > pos:
            out.append(html.unescape(text[pos:lt]))
        pos = _skip_markup(text, lt, out)
    return "".join(out)


def _skip_markup(text: str, lt: int, out: list[str]) -> int:
    # The markup starting with the "<" at lt: where the text after it
    # starts.  A line end goes into out where a block tag was.
    n = len(text)
    nxt = text[lt + 1:lt + 2]
    if nxt == "!":
        if text.startswith("<!--", lt):
            end = text.find("-->", lt + 4)
            return n if end < 0 else end + 3
        end = text.find(">", lt + 2)  # <!DOCTYPE ...>, <![CDATA[...]]>
        return n if end < 0 else end + 1
    if nxt == "?":
        end = text.find(">", lt + 2)  # a processing instruction
        return n if end < 0 else end + 1
    closing = nxt == "/"
    name_at = lt + 2 if closing else lt + 1
    m = _TAG_NAME.match(text, name_at)
    if m is None:
        if closing and text.startswith(">", name_at):  # "</>" is dropped
            return name_at + 1
        out.append("<")  # not a tag: the "<" is text
        return lt + 1
    name = m.group().lower()
    end = _TAG_REST.match(text, m.end()).end()
    if end >= n:  # no ">": the tag runs to the end
        return n
    pos = end + 1
    if name in _BLOCK:
        out.append("\n")
    if not closing and name in _RAW:  # "<script/>" too (HTML5 ignores the "/")
        close = _RAW_END[name].search(text, pos)
        if close is None:
            return n
        return _skip_markup(text, close.start(), out)
    return pos

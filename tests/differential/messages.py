"""
The messages the differential scripts append to both servers: a few
written here to exercise one feature each, and a few real ones from
C{/work/shared/corpus} (converted to CRLF line ends, as APPEND wants).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["MESSAGES", "CORPUS"]

CORPUS = Path("/work/shared/corpus")


def _crlf(text: str | bytes) -> bytes:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


PLAIN = """\
From: Alice Example <alice@example.org>
To: Bob <bob@example.net>, carol@example.com
Cc: Dave <dave@example.net>
Subject: Lunch on Friday
Date: Mon, 02 Feb 2026 10:00:00 +0100
Message-ID: <plain-1@example.org>

Shall we meet at noon?  The quokka place.
"""

REPLY = """\
From: Bob <bob@example.net>
To: Alice Example <alice@example.org>
Subject: Re: Lunch on Friday
Date: Tue, 03 Feb 2026 09:30:00 +0000
Message-ID: <reply-1@example.net>
In-Reply-To: <plain-1@example.org>
References: <plain-1@example.org>

Noon is fine.
"""

MULTI = """\
From: "Zed, the Sender" <zed@example.com>
To: alice@example.org
Subject: =?UTF-8?Q?R=C3=A9sum=C3=A9_attached?=
Date: Wed, 04 Feb 2026 18:00:00 -0500
Message-ID: <multi-1@example.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1"

preamble
--b1
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Caf=C3=A9 au lait, s'il vous pla=C3=AEt. A long line that is soft-wrap=
ped here.
--b1
Content-Type: text/html; charset=us-ascii

<p>Hello <b>world</b></p>
--b1
Content-Type: application/octet-stream; name="data.bin"
Content-Disposition: attachment; filename="data.bin"
Content-Transfer-Encoding: base64

AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
--b1--
epilogue
"""

#: A single-part quoted-printable body: its decoded size is smaller
#: than its encoded one (BINARY.SIZE, RFC 3516 section 4.2).
QP = """\
From: qp@example.org
To: alice@example.org
Subject: quoted printable
Date: Thu, 05 Feb 2026 12:00:00 +0000
Message-ID: <qp-1@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

M=FCnchen =3D Munich, =
soft break.=20
"""

#: Quoted-printable with white space at line ends, which a decoder must
#: drop (RFC 2045 section 6.7 rule 3), and a soft line break.
QP_SPACES = (b"From: qp@example.org\r\nSubject: qp spaces\r\n"
             b"Date: Thu, 05 Feb 2026 12:30:00 +0000\r\nMIME-Version: 1.0\r\n"
             b"Content-Type: text/plain; charset=us-ascii\r\n"
             b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
             b"trailing spaces   \r\nand a tab\t\r\nsoft=\r\nbreak =3D done\r\n")

#: An address with an RFC 5322 comment (issue 13, SEARCH FROM rule).
COMMENT = """\
From: carol@example.com (Carol Commenter)
To: alice@example.org
Subject: with a comment
Date: Fri, 06 Feb 2026 08:00:00 +0000
Message-ID: <comment-1@example.com>

A comment in the From address.
"""

SMALL = """\
From: tiny@example.org
Subject: tiny
Date: Sat, 07 Feb 2026 08:00:00 +0000

x
"""

MESSAGES: dict[str, bytes] = {
    "plain": _crlf(PLAIN),
    "reply": _crlf(REPLY),
    "multi": _crlf(MULTI),
    "qp": _crlf(QP),
    "comment": _crlf(COMMENT),
    "small": _crlf(SMALL),
    "qp-spaces": QP_SPACES,
}

#: Real mail: name -> path under the corpus.
_REAL = {
    "rfc822": "mail-gem/attachment_emails/cur/attachment_message_rfc822.eml",
    "apple": "mail-gem/mime_emails/cur/raw_email7.eml",
    "calendar": "notmuch/attachment/cur/text-calendar.eml",
    "basic": "mail-gem/plain_emails/cur/basic_email.eml",
}
#: Search strings sent as literals (8-bit text in a command).
MESSAGES["resume"] = "r\u00e9sum\u00e9".encode()
MESSAGES["cafe"] = "caf\u00e9".encode()

for _name, _path in _REAL.items():
    MESSAGES[_name] = _crlf((CORPUS / _path).read_bytes())

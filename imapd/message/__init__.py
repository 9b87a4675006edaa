# -*- test-case-name: tests.imapd.message -*-
"""
The message-structure library behind FETCH and SEARCH.

A L{Message} wraps the bytes of one message as the client sees them (CRLF
line endings) and answers, lazily and without ever raising:

  - C{header_bytes()}, C{text_bytes()}: RFC822.HEADER/BODY[HEADER] and
    RFC822.TEXT/BODY[TEXT];
  - C{section(part, text, fields)}: BODY[section] (RFC 3501 section 6.4.5),
    C{None} when the section does not exist;
  - C{binary_section(part)}: BINARY[part] (RFC 3516), C{None} when the
    part does not exist or its transfer encoding is unknown;
  - C{envelope()}, C{bodystructure(extended)}: wire-encoded ENVELOPE and
    BODY/BODYSTRUCTURE (RFC 3501 section 7.4.2);
  - C{header_fields(name)}, C{decoded_header(name)}, C{sent_date()},
    C{decoded_text()}: field values raw and decoded, the Date, and the
    decoded text parts, for SEARCH and SORT;
  - C{structure()}: the MIME tree (L{imapd.message._structure.Part}).

L{protect_binary_parts} re-encodes binary parts that the stores' CRLF
line ends would change (RFC 3516 section 4.4, APPEND with literal8).

Parsing works on byte offsets: the header is found with C{bytes.find}, and
the MIME tree is built only when a body part is asked for.  Charset
handling lives in L{imapd.charset}.
"""

from imapd.message._binary import protect_binary_parts
from imapd.message._message import Message

__all__ = ["Message", "protect_binary_parts"]

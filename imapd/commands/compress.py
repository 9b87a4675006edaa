# -*- test-case-name: tests.imapd.commands.test_compress -*-
"""COMPRESS (RFC 4978): switch the connection to raw DEFLATE."""

from __future__ import annotations

from imapd.errors import BadCommand, CommandFailed
from imapd.parser.types import Compress

__all__ = ["handle_compress"]


async def handle_compress(session, cmd: Compress):
    """
    RFC 4978 section 3.  The tagged OK goes out uncompressed; everything
    after it, both ways, is compressed.  A second COMPRESS is refused with
    C{NO [COMPRESSIONACTIVE]} (RFC 4978 section 3, RFC 5530), as Dovecot does.
    """
    if cmd.mechanism != "DEFLATE":
        raise BadCommand(f"Unknown compression mechanism {cmd.mechanism[:32]}")
    if session.compression is not None:
        raise CommandFailed("DEFLATE is already active", "COMPRESSIONACTIVE")
    if session.input_pending:
        # The client must wait for this OK before it compresses (RFC 4978
        # section 3); what it sent meanwhile cannot be read either way.
        raise BadCommand("Client did not wait for the COMPRESS reply before sending more data")
    session.send(f"{cmd.tag} OK DEFLATE active\r\n".encode())
    session.suppress_tagged = True
    session.start_compression()

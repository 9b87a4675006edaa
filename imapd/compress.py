# -*- test-case-name: tests.imapd.commands.test_compress -*-
"""
COMPRESS=DEFLATE (RFC 4978): raw DEFLATE (RFC 1951, no zlib header:
C{wbits=-15}) in both directions once the server's tagged OK has been
written.  Each write is flushed with C{Z_SYNC_FLUSH} (RFC 4978 section 4)
so the client can decode every response as soon as it arrives.

The inflater yields bounded chunks, so a few compressed octets that
expand to gigabytes reach the parser a piece at a time and meet its line
and literal limits before they can fill memory.
"""

from __future__ import annotations

import zlib
from typing import Iterator

__all__ = ["Deflate", "CHUNK"]

#: Largest piece of decompressed input handed to the parser at once.
CHUNK = 64 * 1024


class Deflate:
    """One connection's compressor and decompressor."""

    def __init__(self, level: int = zlib.Z_DEFAULT_COMPRESSION) -> None:
        self._deflate = zlib.compressobj(level, zlib.DEFLATED, -15)
        self._inflate = zlib.decompressobj(-15)

    def compress(self, data: bytes) -> bytes:
        """Compress one write and flush it to a byte boundary."""
        return self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def decompress(self, data: bytes) -> Iterator[bytes]:
        """
        Yield the plain input in pieces of at most L{CHUNK} octets.

        @raises zlib.error: the client's stream is not valid DEFLATE.
        """
        pending = data
        while pending:
            out = self._inflate.decompress(pending, CHUNK)
            pending = self._inflate.unconsumed_tail
            if out:
                yield out
            elif not pending:
                break
        if self._inflate.eof:
            # The client ended its stream (RFC 4978 gives no way back to
            # plain text): anything after it is not DEFLATE.
            raise zlib.error("compressed stream ended")

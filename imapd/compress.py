# -*- test-case-name: tests.imapd.commands.test_compress -*-
"""
COMPRESS=DEFLATE (RFC 4978): raw DEFLATE (RFC 1951, no zlib header:
C{wbits=-15}) in both directions once the server's tagged OK has been
written.  Each write is flushed with C{Z_SYNC_FLUSH} (RFC 4978 section 4)
so the client can decode every response as soon as it arrives.

The client controls how much plain text a few compressed octets become
(3 kB of DEFLATE inflate to 262,144 NOOPs), so input is stored compressed
and inflated a bounded piece at a time (C{max_length} and
C{unconsumed_tail}), only as fast as the session consumes commands
(L{imapd.protocol}, invariant 1): a small stream that expands to
gigabytes costs neither memory nor a long reactor turn.
"""

from __future__ import annotations

import zlib

__all__ = ["Deflate", "CHUNK"]

#: Largest piece of decompressed input handed to the parser at once: 2,048
#: pipelined NOOPs, some 10 ms of parsing (a plain read is at most 64 KiB).
CHUNK = 16 * 1024


class Deflate:
    """One connection's compressor and decompressor."""

    def __init__(self, level: int = zlib.Z_DEFAULT_COMPRESSION) -> None:
        self._deflate = zlib.compressobj(level, zlib.DEFLATED, -15)
        self._inflate = zlib.decompressobj(-15)
        #: Compressed input not inflated yet.
        self._tail = b""
        #: The last L{inflate} filled its output: zlib may hold more.
        self._full = False

    def compress(self, data: bytes) -> bytes:
        """Compress one write and flush it to a byte boundary."""
        return self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def feed(self, data: bytes) -> None:
        """Keep compressed input for L{inflate} (nothing is inflated here)."""
        self._tail = self._tail + data if self._tail else data

    @property
    def pending(self) -> bool:
        """Whether L{inflate} may have more plain input to give."""
        return bool(self._tail) or self._full

    def inflate(self, limit: int = CHUNK) -> bytes:
        """
        At most C{limit} octets of plain input from what L{feed} kept.

        @raises zlib.error: the client's stream is not valid DEFLATE, or
            went on after its end (RFC 4978 gives no way back to plain
            text).
        """
        out = self._inflate.decompress(self._tail, limit)
        self._tail = self._inflate.unconsumed_tail
        self._full = len(out) == limit
        if self._inflate.eof:
            self._tail, self._full = b"", False
            raise zlib.error("compressed stream ended")
        return out

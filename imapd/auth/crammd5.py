# -*- test-case-name: tests.imapd.auth.test_crammd5 -*-
"""
Dovecot's CRAM-MD5 password scheme: a stored HMAC-MD5 "context".

Dovecot stores, instead of the password, the MD5 chaining state after the
HMAC inner and outer pads have been hashed (RFC 2104 section 4 suggests
exactly this precomputation).  That is enough to compute HMAC-MD5 over a
CRAM-MD5 challenge (RFC 2195) without knowing the password.  The stored value
is 64 hex digits: the outer state's four 32-bit words, then the inner
state's, each little-endian (Dovecot C{hmac_md5_get_cram_context()}).

C{hashlib} does not expose MD5's internal state, so the MD5 compression
function (RFC 1321 section 3.4) is written out here.
"""

from __future__ import annotations

import hashlib
import math
import struct

__all__ = ["cram_md5_context", "hmac_md5_from_context"]

_MASK = 0xFFFFFFFF
_BLOCK = 64
# RFC 1321 section 3.3: the initial chaining values A, B, C, D.
_IV = (0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476)
# RFC 1321 section 3.4: T[i] = floor(2**32 * abs(sin(i + 1))), and the
# per-step rotation amounts.
_T = tuple(int(abs(math.sin(i + 1)) * 2**32) & _MASK for i in range(64))
_SHIFTS = (7, 12, 17, 22) * 4 + (5, 9, 14, 20) * 4 + (4, 11, 16, 23) * 4 + (6, 10, 15, 21) * 4


def _rotl(x: int, n: int) -> int:
    """
    Rotate a 32-bit word left by C{n} bits.
    """
    return ((x << n) | (x >> (32 - n))) & _MASK


def _compress(state: tuple[int, int, int, int], block: bytes) -> tuple[int, int, int, int]:
    """
    Run MD5's compression function over one 64-byte block.

    @param state: the chaining values (A, B, C, D).
    @param block: exactly 64 bytes.
    @return: the new chaining values.
    """
    x = struct.unpack("<16I", block)
    a, b, c, d = state
    for i in range(64):
        if i < 16:
            f = (b & c) | (~b & d)
            g = i
        elif i < 32:
            f = (d & b) | (~d & c)
            g = (5 * i + 1) % 16
        elif i < 48:
            f = b ^ c ^ d
            g = (3 * i + 5) % 16
        else:
            f = c ^ (b | (~d & _MASK))
            g = (7 * i) % 16
        f = (f + a + _T[i] + x[g]) & _MASK
        a, d, c = d, c, b
        b = (b + _rotl(f, _SHIFTS[i])) & _MASK
    return (
        (state[0] + a) & _MASK,
        (state[1] + b) & _MASK,
        (state[2] + c) & _MASK,
        (state[3] + d) & _MASK,
    )


def _pads(password: bytes) -> tuple[bytes, bytes]:
    """
    The HMAC inner and outer pad blocks for a key (RFC 2104 section 2): a
    key longer than the block is hashed first.
    """
    if len(password) > _BLOCK:
        password = hashlib.md5(password).digest()
    key = password.ljust(_BLOCK, b"\0")
    return bytes(k ^ 0x36 for k in key), bytes(k ^ 0x5C for k in key)


def cram_md5_context(password: bytes) -> bytes:
    """
    Compute Dovecot's stored CRAM-MD5 context for a password.

    @param password: the password.
    @return: 32 bytes: outer then inner MD5 state (hex-encode it for a
        passwd-file).
    """
    ipad, opad = _pads(password)
    outer = _compress(_IV, opad)
    inner = _compress(_IV, ipad)
    return struct.pack("<4I", *outer) + struct.pack("<4I", *inner)


def _md5_finish(state: tuple[int, int, int, int], data: bytes, done: int) -> bytes:
    """
    Finish an MD5 computation that has already hashed C{done} bytes (a
    multiple of 64) into C{state}, over the remaining C{data}.
    """
    total = done + len(data)
    # RFC 1321 sections 3.1-3.2: a 0x80 byte, zeros to 56 mod 64, then the
    # bit length as a little-endian 64-bit integer.
    data += b"\x80" + b"\0" * ((55 - total) % _BLOCK) + struct.pack("<Q", (total * 8) & (2**64 - 1))
    for off in range(0, len(data), _BLOCK):
        state = _compress(state, data[off:off + _BLOCK])
    return struct.pack("<4I", *state)


def hmac_md5_from_context(context: bytes, message: bytes) -> bytes:
    """
    Compute HMAC-MD5 of C{message} from a stored context, as a CRAM-MD5
    server does with a challenge (RFC 2195 section 2).

    @param context: 32 bytes from L{cram_md5_context}.
    @param message: the data to authenticate.
    @return: the 16-byte HMAC.
    @raises ValueError: if C{context} is not 32 bytes.
    """
    if len(context) != 32:
        raise ValueError("a CRAM-MD5 context is 32 bytes")
    outer = struct.unpack("<4I", context[:16])
    inner = struct.unpack("<4I", context[16:])
    inner_digest = _md5_finish(inner, message, _BLOCK)
    return _md5_finish(outer, inner_digest, _BLOCK)

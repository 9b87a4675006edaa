# -*- test-case-name: tests.imapd.auth.test_unixcrypt -*-
"""
Pure-Python crypt(3) algorithms: SHA-crypt (C{$5$}, C{$6$}) and MD5-crypt
(C{$1$}).

Python's C{crypt} module is deprecated and gone from Python 3.13, yet these
are the hashes sysadmins have in their passwd-files (Dovecot's
SHA512-CRYPT, SHA256-CRYPT and MD5-CRYPT schemes, and C{/etc/shadow}).  The
algorithms are fully specified, so we carry them here:

  - SHA-crypt: Ulrich Drepper, "Unix crypt using SHA-256 and SHA-512"
    (U{https://www.akkadia.org/drepper/SHA-crypt.txt}), as in glibc.
  - MD5-crypt: Poul-Henning Kamp's FreeBSD C{crypt-md5.c}, as in glibc.

Each function takes the password as bytes and a I{setting} (the stored
hash, or just its C{$id$salt} prefix) and returns the complete crypt string,
so a caller verifies by comparing the result with the stored value.
"""

from __future__ import annotations

import hashlib
import secrets

__all__ = [
    "CRYPT_ALPHABET",
    "md5_crypt",
    "sha256_crypt",
    "sha512_crypt",
    "gensalt",
]

#: The alphabet of crypt(3)'s own base64 variant (not RFC 4648's).
CRYPT_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# SHA-crypt's round limits and default, from Drepper's specification.  An
# out-of-range "rounds=" is clamped (as glibc does), not refused.
_ROUNDS_DEFAULT = 5000
_ROUNDS_MIN = 1000
_ROUNDS_MAX = 999_999_999
_SHA_SALT_MAX = 16
_MD5_SALT_MAX = 8

# The byte order in which each algorithm's final digest is written out, as
# groups of three bytes (each group becomes four characters; the last group
# is shorter).  These permutations are part of the published algorithms.
_SHA512_ORDER = (
    (0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4),
    (47, 5, 26), (6, 27, 48), (28, 49, 7), (50, 8, 29), (9, 30, 51),
    (31, 52, 10), (53, 11, 32), (12, 33, 54), (34, 55, 13), (56, 14, 35),
    (15, 36, 57), (37, 58, 16), (59, 17, 38), (18, 39, 60), (40, 61, 19),
    (62, 20, 41),
)
_SHA256_ORDER = (
    (0, 10, 20), (21, 1, 11), (12, 22, 2), (3, 13, 23), (24, 4, 14),
    (15, 25, 5), (6, 16, 26), (27, 7, 17), (18, 28, 8), (9, 19, 29),
)
_MD5_ORDER = ((0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5))


def _b64_24bit(b2: int, b1: int, b0: int, n: int) -> str:
    """
    Encode up to three bytes as C{n} crypt-base64 characters, least
    significant six bits first (crypt(3)'s C{b64_from_24bit}).
    """
    w = (b2 << 16) | (b1 << 8) | b0
    out = []
    for _ in range(n):
        out.append(CRYPT_ALPHABET[w & 0x3F])
        w >>= 6
    return "".join(out)


def gensalt(length: int = 16) -> str:
    """
    Make a random salt from the crypt alphabet.

    @param length: the number of characters (16 suits SHA-crypt, 8 MD5-crypt).
    @return: the salt.
    """
    return "".join(secrets.choice(CRYPT_ALPHABET) for _ in range(length))


def _split_setting(setting: str, magic: str) -> tuple[str, str | None]:
    """
    Take the part after C{magic} up to the next C{$} (or the end).

    @return: the raw salt field and, for SHA-crypt, a C{rounds=N} field if
        one came first (else L{None}).
    @raises ValueError: if C{setting} does not start with C{magic}.
    """
    if not setting.startswith(magic):
        raise ValueError(f"crypt setting does not start with {magic!r}")
    rest = setting[len(magic):]
    rounds_field = None
    if rest.startswith("rounds="):
        rounds_field, sep, rest = rest.partition("$")
        if not sep:
            raise ValueError("crypt setting has rounds= but no salt")
    return rest.split("$", 1)[0], rounds_field


def _repeat_to(digest: bytes, length: int) -> bytes:
    """
    Repeat C{digest} and cut it to C{length} bytes: SHA-crypt's P and S
    sequences.
    """
    return (digest * (length // len(digest) + 1))[:length]


def _sha_crypt(password: bytes, setting: str, magic: str, hname: str,
               order: tuple[tuple[int, int, int], ...]) -> str:
    """
    The SHA-crypt algorithm shared by C{$5$} and C{$6$} (Drepper, steps
    1-22), parameterised by the hash and the output permutation.
    """
    salt_field, rounds_field = _split_setting(setting, magic)
    rounds = _ROUNDS_DEFAULT
    if rounds_field is not None:
        try:
            rounds = int(rounds_field[len("rounds="):], 10)
        except ValueError:
            raise ValueError("crypt setting has a non-numeric rounds=") from None
        rounds = min(max(rounds, _ROUNDS_MIN), _ROUNDS_MAX)
    salt = salt_field.encode("utf-8")[:_SHA_SALT_MAX]

    def new(data: bytes = b""):
        return hashlib.new(hname, data)

    size = new().digest_size
    plen = len(password)

    # Steps 4-8: digest B = H(password, salt, password).
    b = new(password + salt + password).digest()
    # Steps 1-3, 9-12: digest A.
    a = new(password + salt)
    for _ in range(plen // size):
        a.update(b)
    a.update(b[: plen % size])
    n = plen
    while n:
        a.update(b if n & 1 else password)
        n >>= 1
    digest = a.digest()
    # Steps 13-16: P, the password stretched to its own length.
    p = _repeat_to(new(password * plen).digest(), plen)
    # Steps 17-20: S, the salt stretched; the repeat count depends on A.
    s = _repeat_to(new(salt * (16 + digest[0])).digest(), len(salt))
    # Step 21: the rounds; each round's input is chosen by the round number
    # (odd or even, multiple of 3, multiple of 7).
    for i in range(rounds):
        c = new(p if i & 1 else digest)
        if i % 3:
            c.update(s)
        if i % 7:
            c.update(p)
        c.update(digest if i & 1 else p)
        digest = c.digest()

    # Step 22: output.  The rounds field appears only if it was given.
    out = [magic]
    if rounds_field is not None:
        out.append(f"rounds={rounds}$")
    out.append(salt.decode("utf-8", "surrogateescape"))
    out.append("$")
    for i, j, k in order:
        out.append(_b64_24bit(digest[i], digest[j], digest[k], 4))
    if size == 64:
        out.append(_b64_24bit(0, 0, digest[63], 2))
    else:
        out.append(_b64_24bit(0, digest[31], digest[30], 3))
    return "".join(out)


def sha256_crypt(password: bytes, setting: str) -> str:
    """
    SHA-256 crypt (C{$5$}).

    @param password: the password.
    @param setting: C{$5$[rounds=N$]salt[$...]}: a stored hash or a new
        setting; anything after the salt is ignored.
    @return: the full crypt string.
    @raises ValueError: if C{setting} is not a C{$5$} setting.
    """
    return _sha_crypt(password, setting, "$5$", "sha256", _SHA256_ORDER)


def sha512_crypt(password: bytes, setting: str) -> str:
    """
    SHA-512 crypt (C{$6$}).

    @param password: the password.
    @param setting: C{$6$[rounds=N$]salt[$...]}: a stored hash or a new
        setting; anything after the salt is ignored.
    @return: the full crypt string.
    @raises ValueError: if C{setting} is not a C{$6$} setting.
    """
    return _sha_crypt(password, setting, "$6$", "sha512", _SHA512_ORDER)


def md5_crypt(password: bytes, setting: str) -> str:
    """
    MD5 crypt (C{$1$}), the FreeBSD algorithm: 1000 fixed rounds, up to
    eight salt characters.

    @param password: the password.
    @param setting: C{$1$salt[$...]}: a stored hash or a new setting.
    @return: the full crypt string.
    @raises ValueError: if C{setting} is not a C{$1$} setting.
    """
    magic = "$1$"
    salt_field, _ = _split_setting(setting, magic)
    salt = salt_field.encode("utf-8")[:_MD5_SALT_MAX]
    plen = len(password)

    alt = hashlib.md5(password + salt + password).digest()
    ctx = hashlib.md5(password + magic.encode("ascii") + salt)
    for i in range(0, plen, 16):
        ctx.update(alt[: min(16, plen - i)])
    # A historical quirk kept by every implementation: for each bit of the
    # length, a NUL byte if set, else the password's first byte.
    n = plen
    while n:
        ctx.update(b"\0" if n & 1 else password[:1])
        n >>= 1
    digest = ctx.digest()
    for i in range(1000):
        c = hashlib.md5(password if i & 1 else digest)
        if i % 3:
            c.update(salt)
        if i % 7:
            c.update(password)
        c.update(digest if i & 1 else password)
        digest = c.digest()

    out = [magic, salt.decode("utf-8", "surrogateescape"), "$"]
    for i, j, k in _MD5_ORDER:
        out.append(_b64_24bit(digest[i], digest[j], digest[k], 4))
    out.append(_b64_24bit(0, 0, digest[11], 2))
    return "".join(out)

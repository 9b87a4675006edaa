# -*- test-case-name: tests.imapd.auth.test_schemes -*-
"""
Password schemes in Dovecot's C{{SCHEME}data} format.

Sysadmins moving from Dovecot bring passwd-files whose password field is
C{{SHA512-CRYPT}$6$...}, C{{SSHA256}...}, C{{ARGON2ID}$argon2id$...} and so
on (Dovecot's "Password Schemes" documentation; the exact formats here were
checked against hashes written by C{doveadm pw} of Dovecot 2.3.19).  This
module verifies those and generates a few.

Rules that matter for security:

  - An unknown scheme is never a match: it is refused with a log line that
    names the scheme (so the sysadmin can see why a login fails).
  - A malformed stored value is never a match either, and is logged.
  - Comparisons of secrets use L{hmac.compare_digest}.
  - Nothing here logs a password or a stored hash.

A value without a C{{SCHEME}} prefix is read with the default scheme,
C{CRYPT} as in Dovecot's passwd-file driver, so bare crypt(3) strings
(C{$6$...}, C{$2y$...}) work as they do in C{/etc/shadow}.

Scheme names are case-insensitive.  Like Dovecot, a binary digest may carry
an encoding suffix: C{{SHA256.HEX}}, C{{SHA256.B64}} or C{{SHA256.BASE64}}.

Several algorithms are slow on purpose (bcrypt, Argon2, SHA-crypt, PBKDF2):
call L{verify_password} and L{hash_password} off the reactor thread.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from twisted.logger import Logger

from imapd.auth.crammd5 import cram_md5_context
from imapd.auth.unixcrypt import gensalt, md5_crypt, sha256_crypt, sha512_crypt

__all__ = [
    "DEFAULT_SCHEME",
    "SUPPORTED_SCHEMES",
    "hash_password",
    "split_scheme",
    "verify_password",
]

_log = Logger()

#: The scheme of a stored value that has no C{{SCHEME}} prefix (Dovecot's
#: passwd-file default).
DEFAULT_SCHEME = "CRYPT"


def _import_crypt():
    """
    Import the standard library's C{crypt} module if this Python still has
    it (it is deprecated and removed in 3.13); it is only needed for
    traditional DES crypt and for libcrypt-only methods such as yescrypt.

    @return: C{crypt.crypt} or L{None}.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt
        except ImportError:
            return None
    return crypt.crypt


# Looked up at call time so tests can take it away.
_system_crypt: Callable[[str, str], str | None] | None = _import_crypt()

# bcrypt's key schedule reads at most 72 bytes; the C implementations that
# wrote existing hashes (crypt_blowfish, OpenBSD) silently ignore the rest,
# while the Python binding refuses longer input, so we cut it ourselves.
_BCRYPT_MAX = 72
_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2x$", "$2y$")
# The work factor of new BLF-CRYPT hashes (bcrypt's own default).
_BCRYPT_COST = 12

# Parameters for new hashes.  Argon2 costs are those Dovecot 2.3 uses
# (libsodium's "interactive" limits, visible in its output), SCRAM uses the
# RFC 7677 minimum iteration count, PBKDF2 Dovecot's default rounds.
_ARGON2I_PARAMS = {"time_cost": 4, "memory_cost": 32768}
_ARGON2ID_PARAMS = {"time_cost": 3, "memory_cost": 65536}
_SCRAM_ITERATIONS = 4096
_PBKDF2_ROUNDS = 5000
_SALT_BYTES = 16


class _Malformed(ValueError):
    """
    A stored value does not have the form its scheme requires.
    """


def _to_bytes(password: str | bytes) -> bytes:
    """
    Passwords are hashed as UTF-8 (as Dovecot does with what the client
    sent); bytes are taken as they are.
    """
    if isinstance(password, str):
        return password.encode("utf-8")
    return bytes(password)


def _eq(a: bytes | str, b: bytes | str) -> bool:
    """
    Compare two secrets in constant time (C{compare_digest} refuses
    non-ASCII str, so encode first).
    """
    if isinstance(a, str):
        a = a.encode("utf-8", "surrogateescape")
    if isinstance(b, str):
        b = b.encode("utf-8", "surrogateescape")
    return hmac.compare_digest(a, b)


def _b64decode(data: str) -> bytes:
    """
    Strict base64, tolerating missing C{=} padding (some LDAP exports drop
    it).
    """
    data = data.strip()
    try:
        return base64.b64decode(data + "=" * (-len(data) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise _Malformed("invalid base64") from None


def _hexdecode(data: str) -> bytes:
    """
    Hex, either case.
    """
    try:
        return bytes.fromhex(data.strip())
    except ValueError:
        raise _Malformed("invalid hex") from None


def _decode(data: str, encoding: str | None, default: str, size: int | None = None) -> bytes:
    """
    Decode a stored binary value.

    @param encoding: C{"HEX"} or C{"B64"} from an explicit scheme suffix, or
        L{None}.
    @param default: the scheme's own encoding.
    @param size: the exact length a digest must have; if the default
        encoding gives another length the other encoding is tried, as
        Dovecot does, since sysadmins mix them up.
    @raises _Malformed: if no encoding yields a valid value.
    """
    decoders = {"HEX": _hexdecode, "B64": _b64decode}
    if encoding is not None:
        raw = decoders[encoding](data)
        if size is not None and len(raw) != size:
            raise _Malformed("wrong digest length")
        return raw
    raw = None
    try:
        raw = decoders[default](data)
    except _Malformed:
        if size is None:
            raise
    if size is None or (raw is not None and len(raw) == size):
        return raw
    other = "B64" if default == "HEX" else "HEX"
    raw = decoders[other](data)
    if len(raw) != size:
        raise _Malformed("wrong digest length")
    return raw


def _encode(raw: bytes, encoding: str) -> str:
    """
    Encode a binary value for storage.
    """
    if encoding == "HEX":
        return raw.hex()
    return base64.b64encode(raw).decode("ascii")


# -- verifiers: (password bytes, stored data, encoding suffix) -> bool ------
#
# Each raises _Malformed (or ValueError) when the stored data cannot be
# read; verify_password turns that into a refusal plus a log line.


def _plain(password: bytes, data: str, encoding: str | None) -> bool:
    """
    PLAIN, CLEAR, CLEARTEXT: the password itself.
    """
    stored = data.encode("utf-8") if encoding is None else _decode(data, encoding, "B64")
    return _eq(password, stored)


def _digest(hname: str, default: str) -> Callable[[bytes, str, str | None], bool]:
    """
    An unsalted digest scheme (SHA1, SHA256, SHA512, PLAIN-MD5, LDAP-MD5).
    """
    size = hashlib.new(hname).digest_size

    def verify(password: bytes, data: str, encoding: str | None) -> bool:
        stored = _decode(data, encoding, default, size)
        return _eq(hashlib.new(hname, password).digest(), stored)

    return verify


def _salted(hname: str) -> Callable[[bytes, str, str | None], bool]:
    """
    A salted digest scheme (SSHA, SSHA256, SSHA512, SMD5): base64 of
    C{H(password + salt) + salt}.
    """
    size = hashlib.new(hname).digest_size

    def verify(password: bytes, data: str, encoding: str | None) -> bool:
        raw = _decode(data, encoding, "B64")
        # Dovecot requires at least one byte of salt.
        if len(raw) <= size:
            raise _Malformed("salted digest has no salt")
        digest, salt = raw[:size], raw[size:]
        return _eq(hashlib.new(hname, password + salt).digest(), digest)

    return verify


def _crypt(password: bytes, data: str, encoding: str | None) -> bool:
    """
    The crypt(3) family: CRYPT, MD5-CRYPT (MD5), SHA256-CRYPT, SHA512-CRYPT,
    BLF-CRYPT, DES-CRYPT.

    Dovecot passes all of these to crypt(3), which picks the algorithm from
    the hash's own C{$id$} prefix, so we do the same whatever the label.
    """
    if data.startswith("$1$"):
        return _eq(md5_crypt(password, data), data)
    if data.startswith("$5$"):
        return _eq(sha256_crypt(password, data), data)
    if data.startswith("$6$"):
        return _eq(sha512_crypt(password, data), data)
    if data.startswith(_BCRYPT_PREFIXES):
        import bcrypt

        try:
            return bcrypt.checkpw(password[:_BCRYPT_MAX], data.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raise _Malformed("invalid bcrypt hash") from None
    return _system_crypt_verify(password, data)


def _system_crypt_verify(password: bytes, data: str) -> bool:
    """
    Verify a hash that only the platform's crypt(3) knows: traditional DES
    (13 characters), BSDI extended DES (C{_...}), yescrypt (C{$y$}), etc.
    """
    # Locked or disabled accounts ("*", "!", "!!", "*LK*") and anything too
    # short to be a DES hash must never match, whatever crypt(3) returns.
    if len(data) < 13 or data[0] in "*!":
        raise _Malformed("not a crypt(3) hash")
    func = _system_crypt
    if func is None:
        _log.error(
            "Cannot verify a crypt(3) hash of type {kind!r}: this Python has no"
            " crypt module; convert the password to SHA512-CRYPT or BLF-CRYPT",
            kind=data[:3] if data.startswith("$") else "DES",
        )
        return False
    try:
        result = func(password.decode("utf-8"), data)
    except (UnicodeDecodeError, ValueError, OSError):
        return False
    if not result or result[0] in "*!":
        return False
    return _eq(result, data)


def _pbkdf2(password: bytes, data: str, encoding: str | None) -> bool:
    """
    Dovecot's PBKDF2: C{$1$salt$rounds$hex}, PBKDF2-HMAC-SHA1 with the salt
    text as given and a 20-byte key (Dovecot C{password-scheme-pbkdf2.c}).
    """
    parts = data.split("$")
    if len(parts) != 5 or parts[0] or parts[1] != "1":
        raise _Malformed("not $1$salt$rounds$hash")
    _, _, salt, rounds_text, hexhash = parts
    if not rounds_text.isdigit() or int(rounds_text) < 1:
        raise _Malformed("invalid rounds")
    stored = _hexdecode(hexhash)
    if len(stored) != hashlib.sha1().digest_size:
        raise _Malformed("wrong key length")
    key = hashlib.pbkdf2_hmac("sha1", password, salt.encode("utf-8"), int(rounds_text))
    return _eq(key, stored)


def _argon2(password: bytes, data: str, encoding: str | None) -> bool:
    """
    ARGON2I and ARGON2ID: the PHC string format (C{$argon2id$v=19$m=...}).
    The variant is taken from the string itself.
    """
    from argon2.exceptions import VerificationError, VerifyMismatchError
    from argon2.low_level import Type, verify_secret

    variants = {"$argon2id$": Type.ID, "$argon2i$": Type.I, "$argon2d$": Type.D}
    for prefix, variant in variants.items():
        if data.startswith(prefix):
            break
    else:
        raise _Malformed("not an Argon2 PHC string")
    try:
        return verify_secret(data.encode("ascii"), password, variant)
    except VerifyMismatchError:
        return False
    except (VerificationError, UnicodeEncodeError):
        raise _Malformed("invalid Argon2 hash") from None


def _cram_md5(password: bytes, data: str, encoding: str | None) -> bool:
    """
    CRAM-MD5: Dovecot's precomputed HMAC-MD5 context (see
    L{imapd.auth.crammd5}).
    """
    stored = _decode(data, encoding, "HEX", 32)
    return _eq(cram_md5_context(password), stored)


def _scram_keys(hname: str, password: bytes, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    """
    The SCRAM StoredKey and ServerKey for a password (RFC 5802 section 3).
    """
    salted = hashlib.pbkdf2_hmac(hname, password, salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hname).digest()
    stored_key = hashlib.new(hname, client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hname).digest()
    return stored_key, server_key


def _scram(hname: str) -> Callable[[bytes, str, str | None], bool]:
    """
    SCRAM-SHA-1 and SCRAM-SHA-256 as Dovecot stores them:
    C{iterations,base64(salt),base64(StoredKey),base64(ServerKey)}.  A
    password matches if both keys it derives are the stored ones.
    """

    def verify(password: bytes, data: str, encoding: str | None) -> bool:
        parts = data.split(",")
        if len(parts) != 4 or not parts[0].isdigit() or int(parts[0]) < 1:
            raise _Malformed("not iterations,salt,storedkey,serverkey")
        salt, stored_key, server_key = (_b64decode(p) for p in parts[1:])
        ours = _scram_keys(hname, password, salt, int(parts[0]))
        # Evaluate both comparisons; no short cut on the first mismatch.
        matches = [_eq(ours[0], stored_key), _eq(ours[1], server_key)]
        return all(matches)

    return verify


# -- generators: password bytes -> stored data (without the prefix) -------


def _gen_digest(hname: str, encoding: str) -> Callable[[bytes], str]:
    """
    A generator for an unsalted digest scheme.
    """
    return lambda password: _encode(hashlib.new(hname, password).digest(), encoding)


def _gen_salted(hname: str) -> Callable[[bytes], str]:
    """
    A generator for a salted digest scheme.
    """

    def generate(password: bytes) -> str:
        salt = os.urandom(_SALT_BYTES)
        return _encode(hashlib.new(hname, password + salt).digest() + salt, "B64")

    return generate


def _gen_plain(password: bytes) -> str:
    """
    PLAIN stores the password; it must survive a passwd-file line.
    """
    text = password.decode("utf-8")
    if any(c in text for c in ":\r\n"):
        raise ValueError("a PLAIN password cannot contain ':' or a line break")
    return text


def _gen_bcrypt(password: bytes) -> str:
    """
    BLF-CRYPT, written with the C{$2y$} prefix as Dovecot does (the same
    algorithm as C{$2b$}; older crypt_blowfish builds know only C{$2y$}).
    """
    import bcrypt

    hashed = bcrypt.hashpw(password[:_BCRYPT_MAX], bcrypt.gensalt(_BCRYPT_COST)).decode("ascii")
    return "$2y$" + hashed[4:]


def _gen_argon2(params: dict[str, int], variant: str) -> Callable[[bytes], str]:
    """
    A generator for ARGON2I or ARGON2ID.
    """

    def generate(password: bytes) -> str:
        from argon2 import PasswordHasher, Type

        hasher = PasswordHasher(parallelism=1, hash_len=32, salt_len=_SALT_BYTES,
                                type=getattr(Type, variant), **params)
        return hasher.hash(password)

    return generate


def _gen_pbkdf2(password: bytes) -> str:
    """
    Dovecot's PBKDF2 format with a 16-character salt.
    """
    salt = gensalt(16)
    key = hashlib.pbkdf2_hmac("sha1", password, salt.encode("ascii"), _PBKDF2_ROUNDS)
    return f"$1${salt}${_PBKDF2_ROUNDS}${key.hex()}"


def _gen_scram(hname: str) -> Callable[[bytes], str]:
    """
    A generator for SCRAM-SHA-1 or SCRAM-SHA-256.
    """

    def generate(password: bytes) -> str:
        salt = os.urandom(_SALT_BYTES)
        stored_key, server_key = _scram_keys(hname, password, salt, _SCRAM_ITERATIONS)
        fields = (salt, stored_key, server_key)
        return ",".join([str(_SCRAM_ITERATIONS)] + [_encode(f, "B64") for f in fields])

    return generate


@dataclass(frozen=True)
class _Scheme:
    """
    How to verify one scheme, and how to generate it if we do.
    """

    verify: Callable[[bytes, str, str | None], bool]
    generate: Callable[[bytes], str] | None = None


_SCHEMES: dict[str, _Scheme] = {
    "PLAIN": _Scheme(_plain, _gen_plain),
    "CLEAR": _Scheme(_plain, _gen_plain),
    "CLEARTEXT": _Scheme(_plain, _gen_plain),
    "CRYPT": _Scheme(_crypt, lambda p: sha512_crypt(p, "$6$" + gensalt(16))),
    "DES-CRYPT": _Scheme(_crypt),
    "MD5-CRYPT": _Scheme(_crypt, lambda p: md5_crypt(p, "$1$" + gensalt(8))),
    # Dovecot's "MD5" is MD5-crypt, not a bare digest (that is PLAIN-MD5).
    "MD5": _Scheme(_crypt, lambda p: md5_crypt(p, "$1$" + gensalt(8))),
    "SHA256-CRYPT": _Scheme(_crypt, lambda p: sha256_crypt(p, "$5$" + gensalt(16))),
    "SHA512-CRYPT": _Scheme(_crypt, lambda p: sha512_crypt(p, "$6$" + gensalt(16))),
    "BLF-CRYPT": _Scheme(_crypt, _gen_bcrypt),
    "SHA": _Scheme(_digest("sha1", "B64"), _gen_digest("sha1", "B64")),
    "SHA1": _Scheme(_digest("sha1", "B64"), _gen_digest("sha1", "B64")),
    "SHA256": _Scheme(_digest("sha256", "B64"), _gen_digest("sha256", "B64")),
    "SHA512": _Scheme(_digest("sha512", "B64"), _gen_digest("sha512", "B64")),
    "PLAIN-MD5": _Scheme(_digest("md5", "HEX"), _gen_digest("md5", "HEX")),
    "LDAP-MD5": _Scheme(_digest("md5", "B64"), _gen_digest("md5", "B64")),
    "SMD5": _Scheme(_salted("md5"), _gen_salted("md5")),
    "SSHA": _Scheme(_salted("sha1"), _gen_salted("sha1")),
    "SSHA256": _Scheme(_salted("sha256"), _gen_salted("sha256")),
    "SSHA512": _Scheme(_salted("sha512"), _gen_salted("sha512")),
    "PBKDF2": _Scheme(_pbkdf2, _gen_pbkdf2),
    "ARGON2I": _Scheme(_argon2, _gen_argon2(_ARGON2I_PARAMS, "I")),
    "ARGON2ID": _Scheme(_argon2, _gen_argon2(_ARGON2ID_PARAMS, "ID")),
    "CRAM-MD5": _Scheme(_cram_md5, lambda p: cram_md5_context(p).hex()),
    "SCRAM-SHA-1": _Scheme(_scram("sha1"), _gen_scram("sha1")),
    "SCRAM-SHA-256": _Scheme(_scram("sha256"), _gen_scram("sha256")),
}

#: The scheme names L{verify_password} understands (without encoding
#: suffixes).
SUPPORTED_SCHEMES = frozenset(_SCHEMES)

_ENCODING_SUFFIXES = {".HEX": "HEX", ".B64": "B64", ".BASE64": "B64"}


def split_scheme(stored: str, default_scheme: str = DEFAULT_SCHEME) -> tuple[str, str]:
    """
    Split a stored password into its scheme and data.

    @param stored: C{{SCHEME}data}, or bare data.
    @param default_scheme: the scheme of bare data.
    @return: the upper-cased scheme name (with any encoding suffix, e.g.
        C{"SHA256.HEX"}) and the data.
    """
    if stored.startswith("{"):
        end = stored.find("}")
        if end > 0:
            return stored[1:end].upper(), stored[end + 1:]
    return default_scheme.upper(), stored


#: A DES crypt(3) value: 2 salt and 11 hash characters of this alphabet.
_DES_ALPHABET = frozenset("./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def password_problem(stored: str) -> str | None:
    """
    Why a passwd-file password field can never match, for a warning when
    the file is read (issue 16 item 9), or None: an unknown C{{SCHEME}},
    or a bare value that is no crypt(3) hash (a password written in
    plain text without C{{PLAIN}}, say).  An empty field is "no
    password", not a problem.  Never quotes the value.
    """
    if not stored:
        return None
    if stored.startswith("{") and stored.find("}") > 0:
        scheme = split_scheme(stored)[0]
        for suffix in _ENCODING_SUFFIXES:
            if scheme.endswith(suffix):
                scheme = scheme[: -len(suffix)]
                break
        if scheme not in _SCHEMES:
            return f"unknown password scheme {scheme!r}; this user cannot log in"
        return None
    if stored.startswith("$") or (len(stored) == 13 and set(stored) <= _DES_ALPHABET):
        return None
    if stored[0] in "!*":
        # A locked account, as /etc/shadow writes it: meant never to match.
        return None
    return ("the password has no {SCHEME} prefix and is no crypt(3) hash (plain text "
            "needs {PLAIN}); this user cannot log in")


def _of_user(user: str | None) -> str:
    """
    The " of user 'name'" part of a log line, quoted with repr() so that a
    user name cannot forge log lines.
    """
    return "" if user is None else f" of user {user!r}"


def verify_password(
    password: str | bytes,
    stored: str,
    *,
    default_scheme: str = DEFAULT_SCHEME,
    user: str | None = None,
) -> bool:
    """
    Check a password against a stored Dovecot-style hash.

    This may take a long time (Argon2, bcrypt): do not call it on the
    reactor thread.

    @param password: what the client sent (str is encoded as UTF-8).
    @param stored: the passwd-file's password field, e.g.
        C{{SSHA256}jncUQh0J...}.
    @param default_scheme: the scheme of a value without C{{SCHEME}}.
    @param user: only used to make log lines useful.
    @return: L{True} only if the password matches; unknown schemes and
        malformed values are logged and give L{False}.
    """
    scheme, data = split_scheme(stored, default_scheme)
    name, encoding = scheme, None
    for suffix, enc in _ENCODING_SUFFIXES.items():
        if scheme.endswith(suffix):
            name, encoding = scheme[: -len(suffix)], enc
            break
    entry = _SCHEMES.get(name)
    if entry is None:
        _log.warn(
            "Refusing password{of_user}: unknown password scheme {scheme!r}",
            of_user=_of_user(user),
            user=user,
            scheme=scheme,
        )
        return False
    if not data:
        # An empty hash means "no password"; it never matches.
        return False
    try:
        return bool(entry.verify(_to_bytes(password), data, encoding))
    except ValueError as e:
        # _Malformed and codec errors: the stored value is at fault.
        _log.warn(
            "Refusing password{of_user}: malformed {scheme} value ({reason})",
            of_user=_of_user(user),
            user=user,
            scheme=scheme,
            reason=str(e) if isinstance(e, _Malformed) else type(e).__name__,
        )
        return False
    except Exception:
        # Fail closed on any surprise, but leave a trace for the sysadmin.
        _log.failure("Refusing password{of_user}: {scheme} verification failed",
                     of_user=_of_user(user), user=user, scheme=scheme)
        return False


def hash_password(password: str | bytes, scheme: str = "SHA512-CRYPT") -> str:
    """
    Make a stored password for a passwd-file, e.g. for a demo user.

    @param password: the password (str is encoded as UTF-8).
    @param scheme: a scheme name from L{SUPPORTED_SCHEMES} (not DES-CRYPT,
        which is too weak to create).
    @return: C{{SCHEME}data}.
    @raises ValueError: for an unknown scheme or one we do not generate, or a
        PLAIN password that a passwd-file line cannot hold.
    """
    name = scheme.upper()
    entry = _SCHEMES.get(name)
    if entry is None or entry.generate is None:
        raise ValueError(f"cannot generate password scheme {scheme!r}")
    return "{" + name + "}" + entry.generate(_to_bytes(password))

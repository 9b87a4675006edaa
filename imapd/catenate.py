# -*- test-case-name: tests.imapd.commands.test_catenate -*-
"""
CATENATE (RFC 4469): build the message of an C{APPEND ... CATENATE (...)}
from TEXT literals and the octets IMAP URLs point at.

Runs in the storage thread pool (it opens mailboxes and reads messages).
Every source mailbox is opened read-only once per command and closed at
the end, so a MULTIAPPEND naming one mailbox a hundred times opens it
once.

A URL costs the client a few dozen octets and the server the whole
message it names, so URL parts are bounded before they are fetched
(issue 18: 2 kB naming one 4 MB message 120 times once assembled 480 MB):
L{Catenator.plan} learns every URL's size from the source mailbox's
records (no message is read) and refuses a message over APPENDLIMIT
(C{[TOOBIG]}, RFC 4469 section 4.2) and a command whose URL parts add up
to more than APPENDLIMIT in all (C{[LIMIT]}, RFC 5530 section 3: a limit
of this server, not of the message; split such a MULTIAPPEND).  The APPEND
handler checks the quota with those sizes before anything is assembled,
and L{Catenator.build_into} keeps counting while it fetches (a section's
size is only known once its message is read).  One command thus takes at
most APPENDLIMIT octets from URLs.

Messages are not assembled in memory: L{Catenator.build_into} writes each
part, in chunks of L{Spool.CHUNK}, to an anonymous temporary file (in
C{TMPDIR}), which the store copies in chunk by chunk
(L{storage.interfaces.ITransaction.append_file}); memory holds one source
message and a chunk.  Nothing here writes to a mailbox: the APPEND handler
commits all messages of the command together, so a bad URL anywhere
appends nothing (RFC 3502 section 6.3.11 for MULTIAPPEND; RFC 4469
section 3 for the command).
"""

from __future__ import annotations

import tempfile
from typing import Optional

from imapd.errors import CommandFailed
from imapd.imapurl import BadUrl, MessageUrl, parse_message_url
from imapd.message import Message
from imapd.parser.types import CatenatePart
from storage.errors import InvalidMailboxName, MailboxNotFound, MessageExpunged

__all__ = ["Catenator", "Spool", "badurl_code"]


def badurl_code(url: bytes) -> str:
    """
    The C{BADURL} response code for C{url} (RFC 4469 section 4.1).
    C{url-resp-text} is any TEXT-CHAR but C{]}, and erratum 4046 (verified)
    says it is the bare URL, not a quoted string; octets that may not
    appear there are percent-encoded so the code stays well-formed.
    """
    text = "".join(
        chr(b) if 0x20 < b < 0x7F and b != 0x5D else "%%%02X" % b for b in url[:1024]
    )
    return "BADURL " + (text or "%20")


class Spool:
    """
    One assembled message in an anonymous temporary file (gone when
    closed, or when the process dies), written in bounded chunks; the
    store copies it in with L{storage.interfaces.ITransaction.append_file}.

    @ivar size: octets written.
    @ivar stored_size: its RFC822.SIZE once stored (every bare LF becomes
        CRLF), as L{imapd.commands.quota.message_size} counts, for the quota.
    """

    #: Octets per write: what one write may copy, not the message's size.
    CHUNK = 1 << 20

    def __init__(self) -> None:
        self.file = tempfile.TemporaryFile(prefix="imapd-catenate-")
        self.size = 0
        self.stored_size = 0
        self._cr = False

    def write(self, data) -> None:
        """Append C{data} (bytes or a view of a source message)."""
        view = memoryview(data).cast("B")
        for i in range(0, view.nbytes, self.CHUNK):
            piece = view[i:i + self.CHUNK].tobytes()
            bare = piece.count(b"\n") - piece.count(b"\r\n")
            if self._cr and piece.startswith(b"\n"):
                bare -= 1  # a CRLF split between two writes is no bare LF
            self._cr = piece.endswith(b"\r")
            self.file.write(piece)
            self.size += len(piece)
            self.stored_size += len(piece) + bare

    def rewind(self):
        """The file, flushed and at its start, for the store to read."""
        self.file.flush()
        self.file.seek(0)
        return self.file

    def read(self) -> bytes:
        """The whole message (only where a conversion needs it whole)."""
        return self.rewind().read()

    def close(self) -> None:
        self.file.close()


class Catenator:
    """
    Resolves the parts of every CATENATE message of one APPEND command.

    @param store: the user's L{storage.interfaces.IStore}.
    @param selected: the selected mailbox's name (the base of URLs that
        start with C{;UID=}), or None.
    @param max_size: the largest message APPEND accepts (APPENDLIMIT).
    """

    #: Most distinct source mailboxes one command may name; each stays
    #: open until the command ends.
    MAX_MAILBOXES = 32
    #: Most URL parts in one command: each costs a lookup and a section
    #: copy, and a message of the command may name each at most once per part.
    MAX_URLS = 1000

    def __init__(self, store, selected: Optional[str], max_size: int) -> None:
        self.store = store
        self.selected = selected
        # RFC 4469 section 4.2: never beyond IMAP's 4 GB message limit.
        self.max_size = min(max_size, 2 ** 32 - 1)
        self._open: dict[str, tuple[object, dict[int, object]]] = {}
        # Only the last source message is kept parsed: clients name the
        # parts of one message in a row (RFC 4469's examples), and keeping
        # every source would hold far more than the message being built.
        self._last: Optional[tuple[tuple[str, int], Message]] = None
        #: Octets taken from URLs by this command so far (see the module
        #: docstring): one APPENDLIMIT for the whole command.
        self._from_urls = 0

    def _too_big(self, size: int) -> None:
        if size > self.max_size:
            raise CommandFailed("Catenated message is too large", "TOOBIG")

    def _charge(self, octets: int) -> None:
        """Count C{octets} more taken from URLs against the command's budget."""
        self._from_urls += octets
        if self._from_urls > self.max_size:
            raise CommandFailed(
                f"URL parts of one APPEND may add up to {self.max_size} octets; "
                f"append fewer messages per command", "LIMIT")

    def plan(self, messages: list[tuple[CatenatePart, ...]]) -> list[int]:
        """
        Before anything is fetched: each message's size as far as it is
        known without reading a message (TEXT parts and whole-message or
        partial URLs; a section counts 0 until it is read).

        @raises CommandFailed: C{[BADURL url]}, C{[TOOBIG]} or C{[LIMIT]}.
        """
        urls = sum(part.url is not None for parts in messages for part in parts)
        if urls > self.MAX_URLS:
            raise CommandFailed(f"More than {self.MAX_URLS} URLs in one APPEND", "LIMIT")
        sizes = []
        from_urls = 0
        for parts in messages:
            size = 0
            for part in parts:
                if part.url is None:
                    size += len(part.text or b"")
                    continue
                known = self._known_size(part.url)
                size += known
                from_urls += known
                self._too_big(size)
                if from_urls > self.max_size:
                    self._charge(from_urls)
            sizes.append(size)
        return sizes

    def build_into(self, parts: tuple[CatenatePart, ...], spool: "Spool") -> None:
        """
        Write the catenated message to C{spool}, part by part: TEXT
        literals as they came, URL parts from the source message in
        chunks, so the message itself is never held in memory (issue 18:
        a 64 MB APPENDLIMIT once meant 64 MB of RAM per message, more for
        a MULTIAPPEND).  A whole source message, or a range of one, is copied a chunk
        at a time; at most one is held whole, for a section (L{_fetch}).

        @raises CommandFailed: C{[BADURL url]} for the first URL that does
            not resolve; C{[TOOBIG]} once the message outgrows C{max_size}
            (RFC 4469 section 4.2), C{[LIMIT]} once the command's URL parts
            outgrow it (see the module docstring); both checked before a
            piece is added, and, where its size is known, before it is read.
        """
        for part in parts:
            if part.url is None:
                data = part.text
            else:
                known = self._known_size(part.url)
                self._too_big(spool.size + known)
                if self._from_urls + known > self.max_size:
                    self._charge(known)
                data = self.resolve(part.url)
                if not isinstance(data, (bytes, memoryview)):
                    # A whole message or a range of one, read from the
                    # store a chunk at a time (never whole in memory).
                    for piece in data:
                        self._charge(len(piece))
                        self._too_big(spool.size + len(piece))
                        spool.write(piece)
                    continue
                self._charge(len(data))
            assert data is not None
            self._too_big(spool.size + len(data))
            spool.write(data)

    def _known_size(self, raw: bytes) -> int:
        """
        The octets C{raw} names as far as the source's records tell (its
        RFC822.SIZE, cut by a partial), without reading the message; 0 for
        a section, whose size needs the message.

        @raises CommandFailed: C{[BADURL url]}.
        """
        try:
            url = parse_message_url(raw)
            _, mailbox, record = self._locate(url)
        except BadUrl as e:
            raise CommandFailed(e.reason, badurl_code(raw)) from None
        if url.section is not None:
            return 0
        size = record.size
        if url.partial is not None:
            offset, length = url.partial
            size = max(0, size - offset)
            if length is not None:
                size = min(size, length)
        return size

    def close(self) -> None:
        """Close every source mailbox."""
        opened, self._open = self._open, {}
        for mailbox, _ in opened.values():
            try:
                mailbox.close()
            except Exception:
                pass

    def resolve(self, raw: bytes):
        """
        The octets C{raw} (a URL as the client sent it) names: bytes, or
        an iterable of pieces (L{_fetch}).

        @raises CommandFailed: C{[BADURL url]}.
        """
        try:
            url = parse_message_url(raw)
            return self._fetch(url)
        except BadUrl as e:
            raise CommandFailed(e.reason, badurl_code(raw)) from None

    def _locate(self, url: MessageUrl):
        """C{(mailbox name, mailbox, record)} of the URL's message."""
        name = url.mailbox if url.mailbox is not None else self.selected
        if name is None:
            raise BadUrl("No mailbox selected for a relative URL")
        mailbox, records = self._mailbox(name)
        if url.uidvalidity is not None and url.uidvalidity != mailbox.uidvalidity:
            raise BadUrl("UIDVALIDITY mismatch")
        record = records.get(url.uid)
        if record is None:
            raise BadUrl("No such message")
        return name, mailbox, record

    def _fetch(self, url: MessageUrl):
        """
        The octets of FETCH BODY[section]<partial> of the URL's message:
        for a whole message or a range of one, the store's pieces as it
        reads them (L{storage.interfaces.IMailbox.read_chunks}); for a
        section, bytes of the message parsed whole (the MIME structure
        needs it).
        """
        name, mailbox, _ = self._locate(url)
        if url.section is None:
            offset, length = url.partial if url.partial is not None else (0, None)
            try:
                return mailbox.read_chunks(url.uid, offset, length)
            except MessageExpunged:
                raise BadUrl("No such message") from None
        if self._last is not None and self._last[0] == (name, url.uid):
            message = self._last[1]
        else:
            try:
                message = Message(mailbox.read(url.uid))
            except MessageExpunged:
                raise BadUrl("No such message") from None
            self._last = ((name, url.uid), message)
        if url.section is None:
            data: Optional[bytes] = message.raw
        else:
            s = url.section
            data = message.section(s.part, s.text, s.fields)
        if data is None:
            raise BadUrl("No such section")
        if url.partial is not None:
            offset, length = url.partial
            # A view, not a copy of up to the whole source message.
            view = memoryview(data)
            data = view[offset:] if length is None else view[offset:offset + length]
        return data

    def _mailbox(self, name: str):
        entry = self._open.get(name)
        if entry is None:
            if len(self._open) >= self.MAX_MAILBOXES:
                raise CommandFailed("Too many mailboxes named in one APPEND", "LIMIT")
            try:
                mailbox = self.store.open(name, True)
            except (MailboxNotFound, InvalidMailboxName):
                raise BadUrl("No such mailbox") from None
            try:
                snapshot = mailbox.sync()
            except Exception:
                mailbox.close()
                raise
            entry = (mailbox, {r.uid: r for r in snapshot.messages})
            self._open[name] = entry
        return entry

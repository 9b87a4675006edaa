# -*- test-case-name: tests.storage.mbox.test_mbox_rewrite -*-
"""
Writing an mbox file, always under the write lock chain and from an
L{MboxState} that matches the file's current bytes.

Two ways, chosen per commit:

 - in place, when nothing is removed and every header that changes fits
   into the bytes it had: new messages are appended at the end (as every
   MDA does), changed C{X-UID}/C{Status}/C{X-Status}/C{X-Keywords} blocks
   are overwritten with the same length (C{X-Keywords} is padded with
   spaces for this), and the zero-padded last UID of C{X-IMAPbase} is
   overwritten last, with the keyword list after it when a keyword is new
   to the mailbox and fits into the line's padding.
 - in place from the first message whose new metadata does not fit (mail
   an MDA appended has no C{X-UID} yet) to the end, when that tail is at
   most half the file: those messages are written again with
   L{storage.mbox.journal.overwrite} (journaled), the ones before are
   patched as above.  Picking up new mail then costs its own size, not
   a rewrite of the whole file.  A crash leaves at worst a message with C{X-UID}
   beyond the stored last UID, which L{storage.mbox.state.parse} accepts.
 - by rewriting the whole file: the new content goes to a temporary file
   in the same directory, which is fsynced and renamed over the mbox
   (DESIGN.md rule 4: a crash leaves the old or the new file).  Messages
   are written in UID order, each with fresh metadata lines and a
   C{Content-Length:}; every other header and body byte is kept.  Bytes
   before the first separator and UW's pseudo message are kept.  Where the
   directory is not writable (a 0775 root:mail spool lets us write the file
   but not create one beside it), the file is overwritten in place instead,
   from its first changed byte, with a recovery journal in the folder root
   (L{storage.mbox.journal}).

Appends (ours, in place) go through L{storage.mbox.journal.append_bytes}:
journaled, and truncated back on an error, so that a crash or a full disk
never leaves a torn last message.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import socket
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from twisted.logger import Logger

from storage.crlf import CHUNK, lf_chunks
from storage.errors import StoreError
from storage.mbox.fromline import make_from_line
from storage.mbox.journal import Journal, append_bytes, overwrite, pread_all
from storage.mbox.headers import base_line, flag_lines, keyword_words, quote_body
from storage.mbox.syntax import ESCAPE, field_name, needs_escape, split_header
from storage.mbox.state import Entry, MboxState, stored_prefix

__all__ = ["NewMessage", "SpooledBody", "Changes", "Outcome", "write_changes", "prepare_new",
           "prepare_new_file", "TEMP_PREFIX"]

_log = Logger(namespace="storage.mbox")

#: Temporary files of full rewrites; the layout never lists dot files.
TEMP_PREFIX = ".imapd-rewrite."


class SpooledBody:
    """
    The body of a new message (LF, mboxrd-quoted) in an anonymous
    temporary file, for a message that arrived as a file
    (L{prepare_new_file}): an in-place append writes it chunk by chunk;
    a commit that renders the whole file in memory reads it whole.
    """

    __slots__ = ("file", "length")

    def __init__(self) -> None:
        self.file = tempfile.TemporaryFile(prefix="imapd-mbox-new-")
        self.length = 0

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.length += len(data)

    def __len__(self) -> int:
        return self.length

    def chunks(self):
        """Its content, from the start, in chunks of L{CHUNK} octets."""
        self.file.flush()
        self.file.seek(0)
        while chunk := self.file.read(CHUNK):
            yield chunk

    def read(self) -> bytes:
        return b"".join(self.chunks())


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to append, already converted by L{prepare_new}."""

    header: bytes  # LF, without our fields, ending in LF
    # LF, mboxrd-quoted; None: the message had no blank line
    body: bytes | SpooledBody | None
    flags: frozenset[str]
    internaldate: datetime
    sender: str


@dataclass(slots=True)
class Changes:
    """What a commit (or a sync's fix-up) asks for."""

    flags: dict[int, frozenset[str]] = field(default_factory=dict)
    claim: set[int] = field(default_factory=set)
    expunge: set[int] = field(default_factory=set)
    appends: list[NewMessage] = field(default_factory=list)
    #: Write the UIDs that are only computed (no X-UID yet) into the file.
    store_uids: bool = True
    #: The UIDs of C{appends}, when the caller keeps them from another
    #: store (a migration, L{storage.migrate}): ascending, all above the
    #: mailbox's last UID; empty: the next UIDs, as always.
    uids: tuple[int, ...] = ()
    #: Raise the last UID given (UIDNEXT - 1) to at least this.
    last_uid: int = 0
    #: The UIDVALIDITY an empty mailbox takes (a migration keeps the
    #: source's); refused for a mailbox with mail in it.
    uidvalidity: int | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """
    What L{write_changes} did.

    @ivar rewritten: the whole file was rewritten; otherwise C{patched}
        (UIDs whose flag block was overwritten), C{stored_last_uid} (the
        last UID written into C{X-IMAPbase}, or C{None}) and C{grew}
        (whether messages were appended) say what changed.
    """

    appended: tuple[int, ...]
    expunged: tuple[int, ...]
    flags_changed: tuple[int, ...]
    rewritten: bool
    patched: tuple[int, ...] = ()
    stored_last_uid: int | None = None
    grew: bool = False
    #: The keywords X-IMAPbase lists now, if an in-place write changed them.
    keywords: tuple[str, ...] | None = None
    #: The index of the first message written again by a tail rewrite.
    cut_from: int | None = None


def prepare_new(data: bytes, flags, internaldate: datetime | None, sender: str) -> NewMessage:
    """
    Turn APPENDed bytes into what we store: LF line endings, our metadata
    fields in its header renamed (L{storage.mbox.headers.ESCAPE}: a
    client must not fake an C{X-UID}, nor lose its own C{Status:}), the
    body quoted (mboxrd).
    """
    if b"\r\r\n" in data:
        # A CR before a CRLF (seen in real spam) would come back one CR
        # short from LF storage: keep such a message in CRLF (the reader
        # judges each line on its own), so BODY[] stays what was appended.
        text = data
    else:
        text = data.replace(b"\r\n", b"\n")
    # Where the header ends and which fields are ours: the reader's own
    # definitions (storage.mbox.syntax), so that no byte of the client's
    # can make the two disagree.
    header, body = split_header(text)
    return _new(header, None if body is None else quote_body(body), flags, internaldate,
                sender)


def prepare_new_file(file, flags, internaldate: datetime | None, sender: str) -> NewMessage:
    """
    L{prepare_new} of what the binary C{file} holds from where it stands,
    read in chunks: the header is held (it ends at the first empty line,
    or is the whole message if there is none), the body goes quoted to a
    L{SpooledBody}, so a large message is never whole in memory.
    """
    chunks = lf_chunks(file)  # the same CRLF rule as prepare_new
    text = b""
    for chunk in chunks:
        text += chunk
        header, rest = split_header(text)
        if rest is not None:
            break
    else:
        return _new(text, None, flags, internaldate, sender)
    body = SpooledBody()
    quoter = _Quoter(body)
    quoter.feed(rest)
    for chunk in chunks:
        quoter.feed(chunk)
    quoter.close()
    return _new(header, body, flags, internaldate, sender)


class _Quoter:
    """
    L{quote_body} of text fed in pieces that may end anywhere in a line:
    a line is quoted by its start only, so a piece's last line is held
    back only while its start could still become C{>*From }.
    """

    def __init__(self, out: SpooledBody) -> None:
        self.out = out
        self.held = b""
        self.at_line_start = True

    def feed(self, text: bytes) -> None:
        text, self.held = self.held + text, b""
        if not self.at_line_start:
            end = text.find(b"\n") + 1
            if not end:
                self.out.write(text)
                return
            self.out.write(text[:end])
            text, self.at_line_start = text[end:], True
        tail = text[text.rfind(b"\n") + 1:]
        if b"From ".startswith(tail.lstrip(b">")) and tail.lstrip(b">") != b"From ":
            # "", ">>", "Fro": not decided until more of the line comes.
            self.held, text = tail, text[:len(text) - len(tail)]
        if text:
            self.out.write(quote_body(text))
            self.at_line_start = text.endswith(b"\n")

    def close(self) -> None:
        if self.held:
            self.out.write(quote_body(self.held))
            self.held = b""


def _new(header: bytes, body, flags, internaldate: datetime | None,
         sender: str) -> NewMessage:
    """The L{NewMessage} of a split message (C{body} already quoted)."""
    if header and not header.endswith(b"\n"):
        # The last line has no line end (a message that is all header):
        # give it CRLF, which reads back as CRLF whatever the line holds.
        # A bare LF after a lone CR would make an empty line, which the
        # reader takes for the end of the header (found by fuzzing).
        header += b"\r\n"
    kept = []
    # Lines end at LF only, as the reader splits them (bytes.splitlines
    # would also cut at a bare CR).
    for line in header.split(b"\n")[:-1]:
        line += b"\n"
        if needs_escape(field_name(line)):
            line = ESCAPE + line
        # A header line that looks like a separator: quote it like a body line.
        kept.append(_quote_line(line))
    if internaldate is None:
        internaldate = datetime.now(timezone.utc)
    return NewMessage(b"".join(kept), body, frozenset(flags), internaldate, sender)


def _quote_line(line: bytes) -> bytes:
    return b">" + line if line.lstrip(b">").startswith(b"From ") else line


def _eol(entry: Entry) -> bytes:
    return b"\r\n" if entry.raw.crlf else b"\n"


def _render_entry(data: bytes, entry: Entry, uid: int, flags, old: bool,
                  base: bytes = b"") -> bytes:
    raw = entry.raw
    eol = _eol(entry)
    head = raw.from_line + eol + b"".join(data[s:e] for s, e in entry.other)
    if entry.other and not head.endswith(b"\n"):
        head += eol
    meta = base + b"".join(flag_lines(uid, flags, old, eol))
    if raw.body_start > raw.header_end:
        body = data[raw.body_start:raw.end]
        return head + meta + b"Content-Length: %d" % len(body) + eol + eol + body + eol
    return head + meta + eol


def _render_new(msg: NewMessage, uid: int, old: bool, base: bytes = b"") -> bytes:
    return b"".join(p if isinstance(p, bytes) else p.read()
                    for p in _render_new_parts(msg, uid, old, base))


def _render_new_parts(msg: NewMessage, uid: int, old: bool,
                      base: bytes = b"") -> list:
    """The pieces of a new message as written: bytes, and a L{SpooledBody}."""
    head = make_from_line(msg.sender, msg.internaldate) + b"\n" + msg.header
    meta = base + b"".join(flag_lines(uid, msg.flags, old, b"\n"))
    if msg.body is None:
        # No blank line: the separator's blank line ends the header.
        return [head + meta + b"\n"]
    body = msg.body
    return [head + meta + b"Content-Length: %d\n\n" % len(body), body, b"\n"]


def _render_pseudo(data: bytes, state: MboxState, last_uid: int, keywords) -> bytes:
    if state.pseudo is not None:
        raw = state.pseudo
        eol = b"\r\n" if raw.crlf else b"\n"
        from storage.mbox.headers import read_meta

        meta = read_meta(data, raw)
        head = raw.from_line + eol + b"".join(data[f.start:f.end] for f in meta.other_fields)
        body = data[raw.body_start:raw.end]
    else:
        eol = b"\n"
        host = socket.gethostname()
        now = datetime.now(timezone.utc)
        head = (make_from_line("MAILER-DAEMON", now) + b"\n"
                + b"Date: " + time.strftime("%a, %d %b %Y %H:%M:%S +0000",
                                             time.gmtime()).encode() + b"\n"
                + b"From: Mail System Internal Data <MAILER-DAEMON@" + host.encode() + b">\n"
                + b"Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\n"
                + b"Message-ID: <%d@" % int(time.time()) + host.encode() + b">\n")
        body = (b"This message keeps the mailbox's IMAP data (UIDVALIDITY and the\n"
                b"last UID given) while the mailbox holds no mail.  Mail programs\n"
                b"hide it; removing it makes IMAP clients download everything again.\n")
    return (head + base_line(state.uidvalidity, last_uid, keywords, eol, pseudo=True)
            + b"Status: RO" + eol + b"Content-Length: %d" % len(body) + eol + eol + body + eol)


def _keywords(state: MboxState, flag_sets) -> tuple[str, ...]:
    known = list(state.keywords)
    # Each distinct set once, in order of first use (a mailbox has few):
    # sorting every message's flags made each APPEND cost the mailbox's size.
    for flags in dict.fromkeys(flag_sets):
        for f in sorted(flags):
            if not f.startswith("\\") and f not in known:
                known.append(f)
    return tuple(known)


def _fit_block(entry: Entry, uid: int, flags, old: bool) -> bytes | None:
    """The new flag block of C{entry}, exactly as long as the old one, or None."""
    if entry.block is None:
        return None
    start, end = entry.block
    eol = _eol(entry)
    lines = flag_lines(uid, flags, old, eol, padding=0)
    need = sum(map(len, lines))
    if need > end - start:
        return None
    return b"".join(flag_lines(uid, flags, old, eol, padding=end - start - need))


def write_changes(fd: int, path: str, state: MboxState, changes: Changes,
                  fsync: bool = True, journal: Journal | None = None,
                  in_place: bool = False) -> Outcome:
    """
    Apply C{changes} to the mbox open as C{fd} (read-write, locked), whose
    content C{state} describes.

    @param journal: where recovery journals of in-place writes go.
    @param in_place: rewrite in place even where a rename would work (a
        store option for spools whose files must keep inode and owner).

    @raises StoreError: nothing or, for an in-place write, not everything
        was written; the message says why.
    """
    by_uid = {e.uid: e for e in state.entries} if changes.expunge else {}
    expunged = tuple(sorted(u for u in changes.expunge if u in by_uid))
    changed: list[int] = []
    if changes.flags or changes.claim:
        new_flags: dict[int, tuple[frozenset[str], bool]] = {}
        for e in state.entries:
            flags = changes.flags.get(e.uid, e.flags)
            old = e.old or e.uid in changes.claim
            if e.uid in changes.flags and flags != e.flags:
                changed.append(e.uid)
            new_flags[e.uid] = (flags, old)
    else:
        # No flag change (an APPEND): every message keeps its own, which
        # L{_try_in_place} knows without a table of 10,000 entries.
        new_flags = None
    state, appended, last_uid, renumbered = _given_uids(path, state, changes)
    try:
        done = None
        if not renumbered:
            done = _try_in_place(fd, state, changes, new_flags, appended, last_uid, fsync,
                                 journal)
        if done is None and not renumbered:
            done = _try_in_place(fd, state, changes, new_flags, appended, last_uid, fsync,
                                 journal, rewrite_tail=True)
        if done is None:
            data = _read_all(fd, state.size)
            if new_flags is None:
                new_flags = {e.uid: (e.flags, e.old) for e in state.entries}
            content = render_all(data, state, changes, new_flags, appended, last_uid)
            replace(fd, path, data, content, fsync, journal, in_place)
    except OSError as e:
        raise StoreError(f"cannot write {path}: {e.strerror or e}") from e
    if done is None:
        return Outcome(appended, expunged, tuple(changed), True)
    patched, stored, keywords, cut_from = done
    return Outcome(appended, expunged, tuple(changed), False, patched, stored,
                   bool(changes.appends) or cut_from is not None, keywords, cut_from)


def _given_uids(path: str, state: MboxState, changes: Changes):
    """
    C{(state, appended UIDs, last UID, whether the UIDVALIDITY changes)}
    for C{changes}: the next UIDs, or those a migration gives
    (L{Changes.uids}), checked so that no UID is given twice (RFC 3501
    section 2.3.1.1).  A new UIDVALIDITY needs a full rewrite: the in-place
    path only patches the last UID of C{X-IMAPbase}.
    """
    last_uid = state.last_uid
    renumbered = False
    if changes.uidvalidity is not None and changes.uidvalidity != state.uidvalidity:
        if state.entries:
            raise StoreError(f"{path} holds mail under UIDVALIDITY {state.uidvalidity}; "
                             f"refusing to change it to {changes.uidvalidity}")
        state = dataclasses.replace(state, uidvalidity=changes.uidvalidity)
        renumbered = True
    if changes.uids:
        uids = tuple(changes.uids)
        if (len(uids) != len(changes.appends) or uids[0] <= last_uid
                or any(a >= b for a, b in zip(uids, uids[1:]))):
            raise StoreError(f"{path}: UIDs {uids[0]}..{uids[-1]} cannot be given after "
                             f"UID {last_uid} (they must ascend above it)")
        appended = uids
        last_uid = uids[-1]
    else:
        appended = tuple(range(last_uid + 1, last_uid + 1 + len(changes.appends)))
        last_uid += len(changes.appends)
    return state, appended, max(last_uid, changes.last_uid), renumbered


def _try_in_place(fd, state, changes, new_flags, appended, last_uid, fsync, journal,
                  rewrite_tail: bool = False):
    """
    Write in place if possible: C{None} if not (nothing was written), else
    C{(patched UIDs, last UID stored or None, new keyword list or None,
    index of the first message written again or None)}.

    @param rewrite_tail: write the messages again from the first one whose flag
        block does not fit (see the module docstring).
    """
    entries = state.entries
    if changes.expunge and changes.expunge & {e.uid for e in entries}:
        return None
    empty = not entries and state.pseudo is None and state.garbage is None
    if state.base_in is None and not empty:
        return None
    # UIDs only computed so far must be at the tail, in file order.  (Known
    # from the parse: in a mailbox of 10,000 messages a look at every
    # entry cost more than the delivery's own write.)
    first_unstored = stored_prefix(state)
    if first_unstored is None:
        return None
    # A keyword new to the mailbox must be listed in X-IMAPbase (Dovecot
    # ignores X-Keywords names it does not list there): in place if the
    # line's padding has room, else rewrite.  An append lists those of
    # its own messages; one another program left unlisted on a message
    # already there is listed by the next write that changes flags (as
    # before this append, nothing reads it differently meanwhile).
    in_use = [] if new_flags is None else [f for f, _ in new_flags.values()]
    keywords = _keywords(state, in_use + [m.flags for m in changes.appends])
    base_patch = None
    if keywords != state.keywords and not empty:
        base_patch = _fit_base(fd, state, last_uid, keywords)
        if base_patch is None:
            return None
    patches: list[tuple[int, bytes]] = []
    patched: list[int] = []
    stored = None
    cut = None
    if new_flags is None:
        # Only messages without a stored UID may need writing again.
        start = first_unstored if changes.store_uids else len(entries)
        candidates = enumerate(entries[start:], start)
    else:
        candidates = enumerate(entries)
    for i, e in candidates:
        flags, old = (e.flags, e.old) if new_flags is None else new_flags[e.uid]
        if flags == e.flags and old == e.old and (e.stored_uid or not changes.store_uids):
            continue
        block = _fit_block(e, e.uid, flags, old)
        if block is None:
            if rewrite_tail and i > 0 and state.size - e.raw.start <= state.size // 2:
                cut = i
                break
            return None
        patches.append((e.block[0], block))
        patched.append(e.uid)
    if rewrite_tail and cut is None:
        return None
    if base_patch is not None:
        patches.append(base_patch)
        stored = last_uid
    elif last_uid != state.stored_last_uid and not empty:
        if state.base_digits is None:
            return None
        start, end = state.base_digits
        digits = b"%0*d" % (end - start, last_uid)
        if len(digits) != end - start:
            return None
        patches.append((start, digits))
        stored = last_uid
    if changes.appends:
        tail = b""
        if state.entries:
            last = state.entries[-1].raw
            if last.end < state.size:
                tail = os.pread(fd, state.size - last.end, last.end)
            sep = b"" if tail in (b"\n", b"\r\n") else b"\n"
        elif state.size:
            sep = b"\n"
        else:
            sep = b""
        keywords = _keywords(state, [m.flags for m in changes.appends])
        out = [sep]
        for i, (msg, uid) in enumerate(zip(changes.appends, appended)):
            base = base_line(state.uidvalidity, last_uid, keywords, b"\n") if empty and i == 0 else b""
            out.extend(_render_new_parts(msg, uid, False, base))
        if cut is None:
            # Pieces, not one string: a spooled body is copied in chunks.
            # The patches go with it, under its one fsync.
            append_bytes(fd, state.size, out, journal, fsync, patches)
            patches = []
    if cut is not None:
        start = state.entries[cut].raw.start
        old_tail = pread_all(fd, start, state.size - start)
        data = _Shifted(old_tail, start)
        again = [_render_entry(data, e, e.uid, *((e.flags, e.old) if new_flags is None
                                                 else new_flags[e.uid]))
                 for e in state.entries[cut:]]
        new_tail = b"".join(again) + b"".join(
            _render_new(msg, uid, False) for msg, uid in zip(changes.appends, appended))
        overwrite(fd, old_tail, new_tail, journal, fsync, base=start)
    for offset, data in patches:
        _pwrite_all(fd, data, offset)
    if fsync and patches:
        os.fsync(fd)
    return tuple(patched), stored, keywords if base_patch is not None else None, cut


class _Shifted:
    """Bytes read from file offset C{base}, sliced with file offsets."""

    def __init__(self, data: bytes, base: int) -> None:
        self.data, self.base = data, base

    def __getitem__(self, s: slice) -> bytes:
        return self.data[s.start - self.base:s.stop - self.base]


def _fit_base(fd: int, state: MboxState, last_uid: int, keywords) -> tuple[int, bytes] | None:
    """
    C{(offset, bytes)} that rewrite the C{X-IMAPbase}/C{X-IMAP} field in
    place with C{last_uid} and C{keywords}, or C{None} if they do not fit.
    Everything up to the last UID's digits keeps its place (their span is
    remembered for later updates).
    """
    if state.base_span is None or state.base_digits is None:
        return None
    start, end = state.base_span
    field = os.pread(fd, end - start, start)
    if len(field) != end - start or not field.lower().startswith(b"x-imap"):
        return None
    d_start, d_end = state.base_digits
    digits = b"%0*d" % (d_end - d_start, last_uid)
    if len(digits) != d_end - d_start:
        return None
    eol = b"\r\n" if field.endswith(b"\r\n") else b"\n"
    head = field[:d_start - start] + digits
    words = keyword_words(keywords)
    room = len(field) - len(head) - len(words) - len(eol)
    if room < 0:
        return None
    return start, head + words + b" " * room + eol


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def _read_all(fd: int, size: int) -> bytes:
    chunks = []
    offset = 0
    while offset < size:
        chunk = os.pread(fd, min(size - offset, 1 << 24), offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def render_all(data: bytes, state: MboxState, changes: Changes, new_flags, appended,
               last_uid: int) -> bytes:
    """The whole new file content for a full rewrite."""
    keep = sorted((e for e in state.entries if e.uid not in changes.expunge),
                  key=lambda e: e.uid)
    keywords = _keywords(state, [f for f, _ in new_flags.values()]
                         + [m.flags for m in changes.appends])
    out = []
    if state.garbage is not None:
        g = data[state.garbage[0]:state.garbage[1]]
        out.append(g if g.endswith(b"\n") else g + b"\n")
    pseudo = state.pseudo is not None or (not keep and not changes.appends)
    if pseudo:
        out.append(_render_pseudo(data, state, last_uid, keywords))
    first = True
    for e in keep:
        flags, old = new_flags[e.uid]
        base = b""
        if first and not pseudo:
            base = base_line(state.uidvalidity, last_uid, keywords, _eol(e))
        first = False
        out.append(_render_entry(data, e, e.uid, flags, old, base))
    for msg, uid in zip(changes.appends, appended):
        base = b""
        if first and not pseudo:
            base = base_line(state.uidvalidity, last_uid, keywords, b"\n")
        first = False
        out.append(_render_new(msg, uid, False, base))
    return b"".join(out)


def replace(fd: int, path: str, data: bytes, content: bytes, fsync: bool,
            journal: Journal | None, in_place: bool = False) -> None:
    """
    Replace the whole content C{data} of the mbox open as C{fd} (locked)
    by C{content}: write-temp-and-rename, or in place with a journal where
    no file can be created beside it (or C{in_place} asks for it).
    """
    directory = os.path.dirname(path) or "."
    temp = os.path.join(directory, f"{TEMP_PREFIX}{os.path.basename(path)}."
                                   f"{os.getpid()}.{time.monotonic_ns()}")
    try:
        if in_place:
            raise PermissionError(errno.EPERM, "the store rewrites in place")
        tfd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError as e:
        if e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        if journal is None:
            _log.warn("Cannot create a temporary file in {directory} ({error}); rewriting "
                      "{path} in place without a journal, which a crash could leave torn",
                      directory=directory, error=e.strerror, path=path)
        else:
            _log.info("Cannot create a temporary file in {directory} ({error}); rewriting "
                      "{path} in place with the recovery journal {journal}",
                      directory=directory, error=e.strerror, path=path,
                      journal=journal.rewrite_path)
        overwrite(fd, data, content, journal, fsync)
        return
    try:
        st = os.fstat(fd)
        with contextlib.suppress(OSError):
            os.fchmod(tfd, st.st_mode & 0o7777)
        with contextlib.suppress(OSError):
            os.fchown(tfd, st.st_uid, st.st_gid)
        _pwrite_all(tfd, content, 0)
        if fsync:
            os.fsync(tfd)
        os.close(tfd)
        tfd = -1
        os.rename(temp, path)
    except BaseException:
        if tfd >= 0:
            os.close(tfd)
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    if fsync:
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

# -*- test-case-name: tests.storage.maildir.test_maildir_uidlist -*-
"""Tests for L{storage.maildir.uidlist}."""

from __future__ import annotations

import os

import pytest

from storage.errors import BrokenMailbox
from storage.maildir.uidlist import Uidlist, UidlistFile, UidlistRecord

from storage_maildir_testutil import FIXTURE_MAILDIR


def test_fixture_roundtrip():
    """Dovecot's own uidlist files are written back byte for byte."""
    for sub in ("", ".Archive", ".Sent", ".&ANw-n&AO8-code"):
        with open(os.path.join(FIXTURE_MAILDIR, sub, "dovecot-uidlist"), "rb") as f:
            data = f.read()
        assert Uidlist.parse(data).serialize() == data


def test_fixture_values():
    """Header fields and records of the fixture's INBOX uidlist are read."""
    with open(os.path.join(FIXTURE_MAILDIR, "dovecot-uidlist"), "rb") as f:
        u = Uidlist.parse(f.read())
    assert (u.uidvalidity, u.nextuid, u.guid) == (
        1795428227,
        15,
        "19249a01810f046b3819000083ecc375",
    )
    assert [r.uid for r in u.records] == list(range(1, 15))
    assert u.records[0].base == "1795428225.M33541P6456.vm,S=3118,W=3173"


def test_next_uid_above_lazy_header():
    """C{N1} above listed UIDs 1-3 (the fixture's Archive) allocates UID 4."""
    u = Uidlist.parse(b"3 V5 N1 Gx\n1 :a\n2 :b\n3 :c\n")
    assert u.next_uid == 4


def test_unknown_extension_fields_kept():
    """Unknown header and record fields survive a parse/serialize cycle."""
    data = (
        b"3 V1700000000 N9 G0123abcd M42 Zfuture\n"
        b"1 W120 :first,S=100\n"
        b"4 GXYZ P12345 Qwhat:ever :second\n"
        b"7 :third with spaces\n"
    )
    u = Uidlist.parse(data)
    assert u.header_ext == ("M42", "Zfuture")
    assert u.records[1] == UidlistRecord(4, "second", ("GXYZ", "P12345", "Qwhat:ever"))
    assert u.records[2].base == "third with spaces"
    assert u.serialize() == data


def test_with_records_keeps_fields_and_raises_n():
    """Adding records raises C{N} and keeps the other records' fields."""
    u = Uidlist.parse(b"3 V1 N3 Gg X1\n1 W5 :a\n")
    new = u.with_records(u.records + (UidlistRecord(10, "b"),))
    assert new.serialize() == b"3 V1 N11 Gg X1\n1 W5 :a\n10 :b\n"


def test_version1_read_written_as_version3():
    """A version 1 uidlist is read and written back as version 3."""
    u = Uidlist.parse(b"1 1234 5\n1 msg.a:2,S\n3 msg.b\n")
    assert (u.uidvalidity, u.nextuid) == (1234, 5)
    assert [r.base for r in u.records] == ["msg.a", "msg.b"]
    assert u.serialize() == b"3 V1234 N5\n1 :msg.a\n3 :msg.b\n"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"2 V1 N1\n",
        b"3 N1\n",
        b"3 V1 N2\nx :a\n",
        b"3 V1 N2\n2 :a\n1 :b\n",
        b"3 V1 N2\n1 W1\n",
    ],
)
def test_broken(data):
    """Damaged files raise L{BrokenMailbox} instead of being guessed at."""
    with pytest.raises(BrokenMailbox):
        Uidlist.parse(data)


def test_file_cache_and_replace(tmp_path):
    """L{UidlistFile} notices a replaced file and writes by rename."""
    uf = UidlistFile(str(tmp_path), fsync=False)
    assert uf.read() is None
    uf.write(Uidlist(7, 1, "g"))
    first = uf.read()
    assert first.uidvalidity == 7
    assert uf.read() is first
    uf.write(Uidlist(7, 2, "g", records=(UidlistRecord(1, "x"),)))
    assert uf.read().records == (UidlistRecord(1, "x"),)
    assert sorted(os.listdir(tmp_path)) == ["dovecot-uidlist"]


def test_a_reader_parses_only_the_lines_appended_since(tmp_path, monkeypatch):
    """
    A session re-reading the file after a delivery appended to it parses
    the new lines only (a 10,000-line file is not parsed again); a file
    replaced by rename, or whose new tail lacks its newline (an append cut
    short), is read whole again.
    """
    writer = UidlistFile(str(tmp_path), fsync=False)
    records = tuple(UidlistRecord(uid, f"m{uid}") for uid in range(1, 1001))
    writer.write(Uidlist(7, 1001, "g", records=records))
    reader = UidlistFile(str(tmp_path), fsync=False)
    assert len(reader.read().records) == 1000
    current = writer.read_locked()
    added = (UidlistRecord(1001, "new1"), UidlistRecord(1002, "new2"))
    writer.append(current.with_records(current.records + added), added)
    parses = []
    real = Uidlist.parse.__func__
    monkeypatch.setattr(Uidlist, "parse", classmethod(
        lambda cls, data, path="": (parses.append(len(data)), real(cls, data, path))[1]))
    seen = reader.read()
    assert seen.records[-2:] == added and len(seen.records) == 1002
    assert seen.uidvalidity == 7 and seen.next_uid == 1003
    assert parses == []
    # A torn tail (no newline yet): read whole, and the torn line dropped.
    with open(writer.path, "ab") as f:
        f.write(b"1003 :torn")
    assert reader.read().records[-1] == added[-1]
    assert len(parses) == 1
    # Replaced by rename: read whole.
    writer.write(Uidlist(8, 1, "h", records=(UidlistRecord(1, "only"),)))
    assert reader.read().records == (UidlistRecord(1, "only"),)
    assert len(parses) == 2


def _count_parses(monkeypatch) -> list[int]:
    parses: list[int] = []
    real = Uidlist.parse.__func__
    monkeypatch.setattr(Uidlist, "parse", classmethod(
        lambda cls, data, path="": (parses.append(len(data)), real(cls, data, path))[1]))
    return parses


def test_a_new_uidlist_file_takes_what_the_process_parsed_before(tmp_path, monkeypatch):
    """
    Each LMTP delivery opens the Maildir afresh (a new UidlistFile): the
    read it gives UIDs from (under the lock) takes the process's last
    parse of the file and the lines appended since, not the 10,000 lines
    again (30 ms of each delivery into a synced 10,000-message mailbox).
    """
    from storage.maildir import uidlist as module

    module._parsed.clear()
    records = tuple(UidlistRecord(uid, f"m{uid}") for uid in range(1, 10001))
    UidlistFile(str(tmp_path), fsync=False).write(Uidlist(7, 10001, "g", records=records))
    assert len(UidlistFile(str(tmp_path), fsync=False).read_locked().records) == 10000
    parses = _count_parses(monkeypatch)
    for n in range(10001, 10011):
        delivery = UidlistFile(str(tmp_path), fsync=False)
        current = delivery.read_locked()
        assert current.next_uid == n and len(current.records) == n - 1
        added = (UidlistRecord(n, f"new{n}"),)
        delivery.append(current.with_records(current.records + added), added)
    assert parses == []
    fresh = UidlistFile(str(tmp_path), fsync=False).read_locked()
    assert [r.base for r in fresh.records[-3:]] == ["new10008", "new10009", "new10010"]
    assert parses == []
    # What a full parse of the file says, record for record.
    with open(os.path.join(tmp_path, "dovecot-uidlist"), "rb") as f:
        assert Uidlist.parse.__func__(Uidlist, f.read()) == fresh


def test_a_file_written_anew_in_place_is_parsed_whole(tmp_path, monkeypatch):
    """
    Same inode and larger, but not what the process parsed plus lines:
    the shared parse is not extended (a program that rewrote the file in
    place, against the rules, must not make us give UIDs from old lines).
    """
    from storage.maildir import uidlist as module

    module._parsed.clear()
    path = os.path.join(tmp_path, "dovecot-uidlist")
    with open(path, "wb") as f:
        f.write(b"3 V7 N3\n1 :a\n2 :b\n")
    assert [r.base for r in UidlistFile(str(tmp_path), fsync=False).read_locked().records] \
        == ["a", "b"]
    parses = _count_parses(monkeypatch)
    with open(path, "r+b") as f:  # same inode: line 2 changed, a line added
        f.write(b"3 V7 N4\n1 :a\n2 :c\n3 :d\n")
    got = UidlistFile(str(tmp_path), fsync=False).read()
    assert [r.base for r in got.records] == ["a", "c", "d"]
    assert len(parses) == 1


def test_the_shared_parses_are_bounded(tmp_path, monkeypatch):
    from storage.maildir import uidlist as module

    module._parsed.clear()
    monkeypatch.setattr(module, "_MAX_PARSED_RECORDS", 250)
    for n in range(5):
        d = tmp_path / f"box{n}"
        d.mkdir()
        records = tuple(UidlistRecord(uid, f"m{uid}") for uid in range(1, 101))
        UidlistFile(str(d), fsync=False).write(Uidlist(7, 101, "g", records=records))
        UidlistFile(str(d), fsync=False).read_locked()
    assert sum(len(u.records) for _k, u in module._parsed.values()) <= 250
    # The most recent ones are kept.
    assert os.path.join(str(tmp_path / "box4"), "dovecot-uidlist") in module._parsed

"""
L{storage.maildir.repair.read_leniently}: what a damaged dovecot-uidlist
still says (the store's tests are in tests/imapd/adminops/test_repair.py).
"""

from storage.maildir.repair import read_leniently


def test_every_readable_line_keeps_its_uid():
    """NUL lines, repeats and swaps are dropped or put back; the rest keep their UIDs."""
    data = (b"3 V17 N9 Gabc X1\n2 :b\n1 W5 :a\n\0\0\0\0\n4 :c\n4 :d\n5 :a\n7 :e:2,S\n")
    uidlist, validity, problems = read_leniently(data, "u")
    assert validity == 17 and uidlist.nextuid == 9 and uidlist.header_ext == ("X1",)
    assert [(r.uid, r.base, r.ext) for r in uidlist.records] == [
        (1, "a", ("W5",)), (2, "b", ()), (4, "c", ()), (7, "e", ())]
    assert len(problems) == 4


def test_header_damage():
    """An unreadable V is None (the caller decides); a lost header line is noticed."""
    uidlist, validity, problems = read_leniently(b"3 V1?7 N9\n1 :a\n", "u")
    assert validity is None and uidlist.next_uid == 9
    assert "UIDVALIDITY (V) unreadable" in problems[0]
    uidlist, validity, problems = read_leniently(b"1 :a\n3 :b\n", "u")
    assert validity is None and [r.uid for r in uidlist.records] == [1, 3]
    assert uidlist.next_uid == 4

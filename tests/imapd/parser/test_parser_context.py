"""
Tests for L{imapd.parser.context}: the RFC 5267 RETURN options (PARTIAL,
UPDATE, CONTEXT) of SEARCH and SORT, and CANCELUPDATE, as tables of raw
bytes and the expected result.
"""

from __future__ import annotations

import pytest

from imapd.parser import ParseError, Search, SearchKey
from imapd.parser.context import CancelUpdate
from imapd.parser.sort import Sort

ALL = SearchKey("AND", children=(SearchKey("ALL"),))


def S(ret, partial=None, uid=False):
    """An expected C{SEARCH RETURN (...) ALL}."""
    return Search("a", None, ALL, uid, ret, partial)


@pytest.mark.parametrize("raw, expected", [
    (b"a SEARCH RETURN (PARTIAL 1:100) ALL\r\n", S(("PARTIAL",), (1, 100))),
    (b"a SEARCH RETURN (partial 500:400 COUNT) ALL\r\n", S(("PARTIAL", "COUNT"), (400, 500))),
    (b"a UID SEARCH RETURN (UPDATE) ALL\r\n", S(("UPDATE",), uid=True)),
    (b"a SEARCH RETURN (UPDATE MIN CONTEXT) ALL\r\n", S(("UPDATE", "MIN", "CONTEXT"))),
    # The CONTEXT hint alone asks for no result: ALL, as RETURN ().
    (b"a SEARCH RETURN (CONTEXT) ALL\r\n", S(("CONTEXT", "ALL"))),
    (b"a SEARCH RETURN () ALL\r\n", S(("ALL",))),
    (b"a SEARCH RETURN (COUNT COUNT) ALL\r\n", S(("COUNT",))),
])
def test_search_return_options(one, raw, expected):
    """RFC 5267 section 4: PARTIAL with its range (ascending), UPDATE, CONTEXT."""
    assert one(raw) == expected


def test_sort_return_options(one):
    """CONTEXT=SORT: the same options on SORT."""
    cmd = one(b"a UID SORT RETURN (UPDATE PARTIAL 2:1) (DATE) UTF-8 ALL\r\n")
    assert cmd == Sort("a", (("DATE", False),), "UTF-8", ALL, True, ("UPDATE", "PARTIAL"), (1, 2))


@pytest.mark.parametrize("raw", [
    b"a SEARCH RETURN (PARTIAL 1:5 ALL) ALL\r\n",
    b"a SEARCH RETURN (ALL PARTIAL 1:5) ALL\r\n",
    b"a SEARCH RETURN (PARTIAL 1:5 PARTIAL 1:5) ALL\r\n",
    b"a SEARCH RETURN (PARTIAL 0:5) ALL\r\n",
    b"a SEARCH RETURN (PARTIAL 1:*) ALL\r\n",
    b"a SEARCH RETURN (PARTIAL -1:-5) ALL\r\n",
    b"a SEARCH RETURN (PARTIAL 7) ALL\r\n",
    b"a SEARCH RETURN (PARTIAL) ALL\r\n",
    b"a SEARCH RETURN (NOTIFY) ALL\r\n",
])
def test_bad_return_options(one, raw):
    """RFC 5267 section 4.4: one PARTIAL or ALL; nz-number:nz-number; RFC 9394's negatives are not ours."""
    assert isinstance(one(raw), ParseError)


@pytest.mark.parametrize("raw, expected", [
    (b'a CANCELUPDATE "B01"\r\n', CancelUpdate("a", ("B01",))),
    (b'a cancelupdate "x" "y z"\r\n', CancelUpdate("a", ("x", "y z"))),
    (b"a CANCELUPDATE\r\n", None),
    (b"a CANCELUPDATE B01\r\n", None),
    (b'a CANCELUPDATE "B01" \r\n', None),
])
def test_cancelupdate(one, raw, expected):
    """RFC 5267 section 4.3.5: one or more quoted tags."""
    got = one(raw)
    if expected is None:
        assert isinstance(got, ParseError)
    else:
        assert got == expected


def test_update_fetch_atts(one):
    """RFC 5465 section 7: UPDATE may carry FETCH attributes."""
    from imapd.parser.types import FetchAttr

    cmd = one(b"a SEARCH RETURN (COUNT UPDATE (UID FLAGS)) ALL\r\n")
    assert cmd == Search("a", None, ALL, False, ("COUNT", "UPDATE"), None,
                         (FetchAttr("UID"), FetchAttr("FLAGS")))
    assert isinstance(one(b"a SEARCH RETURN (UPDATE ()) ALL\r\n"), ParseError)

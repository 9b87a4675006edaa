"""RFC 7162 section 3.2.5: the QRESYNC select parameter's value."""

import pytest

from imapd.parser.primitives import NotParseable
from imapd.parser.qresync import parse_qresync_param
from imapd.parser.types import QresyncParam, SequenceSet


@pytest.mark.parametrize("raw,expected", [
    (b"(67890007 20050715194045000)", QresyncParam(67890007, 20050715194045000)),
    (b"(67890007 20050715194045000 41,43:211,214:541)",
     QresyncParam(67890007, 20050715194045000,
                  SequenceSet(((41, 41), (43, 211), (214, 541))))),
    (b"(67890007 90060115194045000 1:29997 (5000,7500,9000,9990:9999 "
     b"15000,22500,27000,29970,29973,29976,29979,29982,29985,29988,29991,29994,29997))",
     QresyncParam(67890007, 90060115194045000, SequenceSet(((1, 29997),)),
                  (SequenceSet(((5000, 5000), (7500, 7500), (9000, 9000), (9990, 9999))),
                   SequenceSet(((15000, 15000), (22500, 22500), (27000, 27000),
                                (29970, 29970), (29973, 29973), (29976, 29976),
                                (29979, 29979), (29982, 29982), (29985, 29985),
                                (29988, 29988), (29991, 29991), (29994, 29994),
                                (29997, 29997)))))),
    (b"(1 2 (1:3 4:6))",
     QresyncParam(1, 2, None, (SequenceSet(((1, 3),)), SequenceSet(((4, 6),))))),
])
def test_valid(raw, expected):
    assert parse_qresync_param(raw) == expected


@pytest.mark.parametrize("raw", [
    None, b"1", b"()", b"(1)", b"(0 5)", b"(1 0)", b"(1 2 $)", b"(1 2 1:3 (1:3))",
    b"(1 2 1:3 (1 2) 4)", b"(1 2 1:3", b"(1 2 x)", b"(1 9223372036854775808)",
])
def test_invalid(raw):
    with pytest.raises(NotParseable):
        parse_qresync_param(raw)

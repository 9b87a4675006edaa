"""
SEARCH FROM/TO/CC/BCC with a whole address (RFC 3501 section 6.4.4): a
message matches whether its field writes the address as C{addr},
C{Name <addr>} or C{addr (Comment)}, and substrings of the field as
written still match; on each store, answered once from the messages and
once more from the per-node index that the first search filled.
"""

import pytest

FORMS = [
    b"joe@example.com (Joe Smith)",       # 1: the comment form
    b"Joe Smith <joe@example.com>",       # 2: name-addr
    b"joe@example.com",                   # 3: a bare addr-spec
    b'"Ann B." <ann@x.org>, bob@y.org (Bob)',  # 4: a list
    b"Undisclosed recipients:;",          # 5: an empty group
]


def _search(conv, tag, key):
    lines = conv.ok(f"{tag} SEARCH {key}")
    return [int(n) for n in lines[0].split()[2:]] if lines[0].startswith("* SEARCH") else []


@pytest.mark.parametrize("field", ["FROM", "TO", "CC", "BCC"])
def test_full_address_matches_every_form(authed, field):
    """An address, <address> and Name <address> find the message in each of the three forms."""
    header = {"FROM": b"From", "TO": b"To", "CC": b"Cc", "BCC": b"Bcc"}[field]
    for i, value in enumerate(FORMS):
        authed.append(f"a{i}", header + b": " + value + b"\r\nSubject: s\r\n\r\nbody\r\n")
    authed.ok("s1 SELECT INBOX")
    for rnd in range(2):  # the second round reads the index the first filled
        def search(key, _r=rnd):
            return _search(authed, f"r{_r}", f"{field} {key}")
        assert search('"joe@example.com"') == [1, 2, 3]
        assert search('"<joe@example.com>"') == [1, 2, 3]
        assert search('"Joe Smith <joe@example.com>"') == [1, 2]
        assert search('"joe@example.com (Joe Smith)"') == [1, 2]
        assert search('"ann b. <ANN@x.org>"') == [4]
        assert search('"Bob <bob@y.org>"') == [4]
        # Substrings of the field as written (RFC 3501 section 6.4.4).
        assert search('"(Joe Smith)"') == [1, 2]
        assert search('"Smith"') == [1, 2]
        assert search('"\\"Ann B.\\""') == [4]
        assert search('"Undisclosed"') == [5]
        assert search('"missing_domain"') == []

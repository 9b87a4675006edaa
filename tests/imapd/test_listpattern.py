"""
LIST/LSUB wildcard matching (RFC 3501 section 6.3.8, issue 18 item 1):
the linear matcher agrees with a brute-force reference on random patterns
and names, and a pattern built to make a backtracking matcher explode is
answered at once.
"""

import functools
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imapd.errors import BadCommand
from imapd.listpattern import MAX_PATTERN, MAX_PATTERNS, check_patterns, compile_pattern


def reference(pattern: str, name: str, delimiter: str = "/") -> bool:
    """The RFC's definition, by exhaustive recursion (small inputs only)."""

    @functools.lru_cache(maxsize=None)
    def m(i: int, j: int) -> bool:
        if i == len(pattern):
            return j == len(name)
        p = pattern[i]
        if p == "*":
            return any(m(i + 1, k) for k in range(j, len(name) + 1))
        if p == "%":
            k = j
            while True:
                if m(i + 1, k):
                    return True
                if k == len(name) or name[k] == delimiter:
                    return False
                k += 1
        return j < len(name) and name[j] == p and m(i + 1, j + 1)

    return m(0, 0)


_ALPHABET = "ab/*%"


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=_ALPHABET, max_size=9), st.text(alphabet="ab/", max_size=12))
def test_agrees_with_reference(pattern, name):
    """Every pattern over a small alphabet matches exactly the names the definition says."""
    assert compile_pattern(pattern, "/")(name) == reference(pattern, name)


@pytest.mark.parametrize("pattern, name, expected", [
    ("*", "", True),
    ("%", "a/b", False),
    ("%/%", "a/b", True),
    ("*%", "a/b", True),
    ("%*", "a/b", True),
    ("%%", "ab", True),
    ("INBOX", "INBOX", True),
    ("INBOX", "INBOXx", False),
    ("a*b%c", "a/x/bc", True),
    ("a*b%c", "a/xb/c", False),
])
def test_examples(pattern, name, expected):
    """Hand-picked cases: adjacent wildcards and the delimiter rule of C{%}."""
    assert compile_pattern(pattern, "/")(name) is expected


def test_adversarial_pattern_is_linear():
    """The pattern from the security review against a 200-character name takes milliseconds."""
    name = "a" * 200
    started = time.perf_counter()
    for pattern in ("*a*a*a*a*a*a*ab", "%a%a%a%a%a%a%ab", "*a" * 500 + "b"):
        assert compile_pattern(pattern, "/")(name) is False
    assert time.perf_counter() - started < 1.0


def test_limits():
    """Overlong patterns and too many of them are a BAD [LIMIT]."""
    check_patterns(b"", [b"*" * MAX_PATTERN])
    with pytest.raises(BadCommand) as e:
        check_patterns(b"x", [b"*" * MAX_PATTERN])
    assert e.value.code == "LIMIT"
    with pytest.raises(BadCommand):
        check_patterns(b"", [b"%"] * (MAX_PATTERNS + 1))

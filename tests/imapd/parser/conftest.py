"""Shared helpers for the parser tests: feed bytes, get events."""

from __future__ import annotations

import pytest

from imapd.parser import ContinuationNeeded, Parser, ParserLimits


def parse_one(raw: bytes, limits: ParserLimits | None = None) -> object:
    """
    Feed C{raw} to a fresh parser and return its only event, ignoring
    continuation requests (literal tests check those separately).
    """
    events = [e for e in Parser(limits).feed(raw)
              if not isinstance(e, ContinuationNeeded)]
    assert len(events) == 1, events
    return events[0]


@pytest.fixture
def one():
    """The L{parse_one} helper, as a fixture."""
    return parse_one

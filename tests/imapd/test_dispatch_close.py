"""
A command's coroutine closed while it waits (collected after its
connection went, with nobody to resume it) ends without an answer: before,
the error mapping caught its GeneratorExit and wrote a tagged NO to a
transport that was gone.
"""

from __future__ import annotations

import dataclasses

from twisted.internet import defer

from imapd.commands import COMMANDS


def test_a_closed_command_coroutine_is_not_answered(conv, monkeypatch):
    hung: defer.Deferred = defer.Deferred()

    async def hang(session, cmd):
        await hung

    monkeypatch.setitem(COMMANDS, "NOOP", dataclasses.replace(COMMANDS["NOOP"], handler=hang))
    coroutines = []
    real = defer.Deferred.fromCoroutine

    def capture(coro):
        coroutines.append(coro)
        return real(coro)
    monkeypatch.setattr(defer.Deferred, "fromCoroutine", staticmethod(capture))
    conv.send(b"h1 NOOP\r\n")
    for _ in range(10):
        conv.clock.advance(0)
    assert len(coroutines) == 1
    assert not any(line.startswith("h1 ") for line in conv.lines())
    coroutines[0].close()
    assert not any(line.startswith("h1 ") for line in conv.lines())

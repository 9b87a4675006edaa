# -*- test-case-name: tests.storage.test_storage_registry -*-
"""
Behaviour every store shares, kept out of the narrow L{IStore} interface
(STYLE.md: a narrow interface, shared behaviour in a base class).
"""

from __future__ import annotations

from typing import Callable

from storage.errors import InvalidMailboxName, MailboxNotFound

__all__ = ["SubscriptionsMixin", "UNKNOWN_NEXT_GAP"]

#: UIDs a repair leaves unused when the store's record of the last UID it
#: gave is unreadable and no modseq log covers it (L{storage.maildir.repair},
#: L{storage.mbox.repair}): UIDs expunged from the end of the mailbox must
#: never be given again (RFC 3501 section 2.3.1.1), and a gap costs clients
#: nothing.
UNKNOWN_NEXT_GAP = 1000


class SubscriptionsMixin:
    """
    RFC 3501 sections 6.3.6/6.3.7 over a subscriptions file object with
    C{read()} and C{change(name, subscribed) -> bool}.

    @cvar _normalize: the store layout's name check and canonical form.
    """

    _subscriptions: object
    _normalize: Callable[[str], str]

    def subscriptions(self) -> list[str]:
        """The subscribed names, in file order."""
        return self._subscriptions.read()

    def subscribe(self, name: str) -> None:
        """Subscribe C{name}; it need not exist."""
        self._subscriptions.change(self._normalize(name), True)

    def unsubscribe(self, name: str) -> None:
        """Unsubscribe C{name}; L{MailboxNotFound} if it was not subscribed."""
        try:
            name = self._normalize(name)
        except InvalidMailboxName:
            pass  # another program may have subscribed a name we refuse
        if not self._subscriptions.change(name, False):
            raise MailboxNotFound(f"{name!r} is not subscribed")

"""
Pluggable mail stores behind the interfaces in L{storage.interfaces}.

Stores are looked up by name through L{storage.registry}; each store is a
package of its own (C{storage.maildir}, later C{storage.mbox}).
"""

from storage.errors import (
    BrokenMailbox,
    InvalidMailboxName,
    LockUnavailable,
    MailboxExists,
    MailboxNotFound,
    MailboxReadOnly,
    MessageExpunged,
    StaleRead,
    StoreError,
)
from storage.interfaces import (
    SYSTEM_FLAGS,
    CommitResult,
    IMailbox,
    IStore,
    ITransaction,
    MailboxInfo,
    MailboxSnapshot,
    MailboxStatus,
    MessageRecord,
)

__all__ = [
    "SYSTEM_FLAGS",
    "BrokenMailbox",
    "CommitResult",
    "IMailbox",
    "IStore",
    "ITransaction",
    "InvalidMailboxName",
    "LockUnavailable",
    "MailboxExists",
    "MailboxInfo",
    "MailboxNotFound",
    "MailboxReadOnly",
    "MailboxSnapshot",
    "MailboxStatus",
    "MessageExpunged",
    "MessageRecord",
    "StaleRead",
    "StoreError",
]

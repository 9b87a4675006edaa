# -*- test-case-name: tests.storage.maildir -*-
"""
The Maildir++ store, compatible with what Dovecot 2.3 keeps on disk:
C{dovecot-uidlist} (version 3), C{dovecot-keywords}, C{subscriptions},
C{.Folder.Sub} directories in modified UTF-7, flags in the C{:2,} info
part.  Modules follow Dovecot's C{index/maildir/}: L{uidlist},
L{keywords}, L{filename}, L{sync}, L{save}, L{layout}, plus L{mailbox} and
L{store} for the interfaces of L{storage.interfaces}.
"""

from storage.maildir.mailbox import MaildirMailbox
from storage.maildir.save import MaildirTransaction
from storage.maildir.store import MaildirStore

__all__ = ["MaildirMailbox", "MaildirStore", "MaildirTransaction"]

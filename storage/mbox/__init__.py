# -*- test-case-name: tests.storage.mbox -*-
"""
The mbox store, compatible with what UW-IMAP and Dovecot keep in mbox
files (C{X-IMAPbase}, C{X-UID}, C{Status}, C{X-Status}, C{X-Keywords},
C{Content-Length}, UW's pseudo message).  Modules follow Dovecot's
C{index/mbox/}: L{fromline} and L{reader} (splitting, no I/O), L{headers}
(our fields), L{state} (UIDs and flags of one parse), L{rewrite} (in place
or by rename), L{save} (transactions), L{mailbox}, L{layout},
L{subscriptions} and L{store}.
"""

from storage.mbox.mailbox import MboxMailbox
from storage.mbox.save import MboxTransaction
from storage.mbox.store import MboxStore, open_mbox_store

__all__ = ["MboxMailbox", "MboxStore", "MboxTransaction", "open_mbox_store"]

# -*- test-case-name: tests.storage.migrate.test_migrate -*-
"""
Moving one user's mail between stores without clients noticing
(C{imapd-admin migrate}, L{imapd.admin_migrate}): UIDVALIDITY, every UID,
UIDNEXT, flags, keywords, subscriptions and, where the source kept them,
MODSEQs stay what clients were told.

 - L{storage.migrate.sources}: reading a source without writing a byte
   of it: mbox (UW-IMAP and Dovecot headers, through the mbox store's own
   reader) and Maildir, whose UIDs may live in C{dovecot-uidlist},
   Courier-IMAP's C{courierimapuiddb} (L{storage.migrate.courier}) or the
   UW-IMAP maildir driver's file names (L{storage.migrate.uwmaildir});
 - L{storage.migrate.targets}: writing through the target store's own
   code, with the UIDs given (L{storage.maildir.restore},
   L{storage.mbox.rewrite.Changes.uids});
 - L{storage.migrate.engine}: the run, mailbox by mailbox, idempotent and
   resumable.
"""

from storage.migrate.engine import MigrationError, MigrationReport, migrate

__all__ = ["migrate", "MigrationReport", "MigrationError"]

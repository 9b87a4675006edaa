"""
The twistd plugin: C{twistd imapd}.

Only a L{ServiceMaker}: Twisted imports every module in C{twisted/plugins/}
to list plugins, so this one imports nothing of ours.  The options and the
service live in L{imapd.tap} and are loaded when the plugin is used.
"""

from twisted.application.service import ServiceMaker

imapd = ServiceMaker(
    "imapd",
    "imapd.tap",
    "An IMAP4rev1 server for Maildir and mbox mail (see --help).",
    "imapd",
)

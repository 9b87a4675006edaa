# -*- test-case-name: tests.delivery -*-
"""
Final delivery into the stores: LMTP (RFC 2033) in the daemon and the
C{imapd-deliver} LDA, both through L{imapd.delivery.core}.
"""

from imapd.delivery.core import (
    BadAddress,
    Deliverer,
    DeliveryError,
    Message,
    OverQuota,
    Recipient,
    TemporaryFailure,
    UnknownUser,
)

__all__ = ["BadAddress", "Deliverer", "DeliveryError", "Message", "OverQuota", "Recipient",
           "TemporaryFailure", "UnknownUser"]

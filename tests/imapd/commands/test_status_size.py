"""
STATUS=SIZE (RFC 8438): the SIZE item of STATUS (and of LIST-STATUS) is
the sum of the messages' RFC822.SIZE, on each store.
"""

import dataclasses

MSG1 = b"Subject: one\r\n\r\nfirst body\r\n"
MSG2 = b"Subject: two\r\n\r\nthe second, longer body\r\n"



def test_rfc8438_status_size(authed):
    """RFC 8438 section 2: SIZE is the total of RFC822.SIZE; 0 for an empty mailbox."""
    authed.append("a1", MSG1)
    authed.append("a2", MSG2)
    authed.ok("c1 CREATE Empty")
    total = len(MSG1) + len(MSG2)
    authed.script(
        f"""
        C: t1 STATUS INBOX (MESSAGES SIZE)
        S: * STATUS INBOX (MESSAGES 2 SIZE {total})
        S: t1 OK STATUS completed
        C: t2 STATUS Empty (SIZE)
        S: * STATUS Empty (SIZE 0)
        S: t2 OK STATUS completed
        C: t3 LIST "" INBOX RETURN (STATUS (SIZE))
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: * STATUS INBOX (SIZE {total})
        S: t3 OK LIST completed
        """
    )


def test_size_computed_when_store_leaves_it_zero(authed, monkeypatch):
    """A store whose status() leaves size 0 still gets the right SIZE, summed from the records."""
    from storage.maildir.store import MaildirStore

    real = MaildirStore.status
    monkeypatch.setattr(MaildirStore, "status",
                        lambda self, name: dataclasses.replace(real(self, name), size=0))
    authed.append("a1", MSG1)
    lines = authed.ok("t1 STATUS INBOX (SIZE MESSAGES)")
    assert lines[0] == f"* STATUS INBOX (SIZE {len(MSG1)} MESSAGES 1)"


def test_capability_advertised(authed):
    """STATUS=SIZE is advertised once authenticated."""
    assert "STATUS=SIZE" in authed.ok("c1 CAPABILITY")[0].split()

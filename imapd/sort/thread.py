# -*- test-case-name: tests.imapd.sort.test_sort_thread -*-
"""
THREAD algorithms (RFC 5256 section 4) and the THREAD response syntax
(section 5).

  - ORDEREDSUBJECT: group by base subject, order each group and the
    groups by sent date; the first message of a group is the parent of
    all the others.
  - REFERENCES: the RFC's steps 1 to 6 (Jamie Zawinski's algorithm), each
    marked below with its number.
  - REFS, as Dovecot implements it after draft-ietf-morg-inthread:
    REFERENCES steps 1 to 4 and 6, without step 5's subject grouping, and
    the threads ordered by the newest sent date found in each.

Sibling order is (sent date, sequence number) everywhere: RFC 5256 step 6
says to use the mailbox order when dates are equal.  All tree walks are
iterative, so a mailbox with a 10,000-deep References chain cannot exhaust
the Python stack.

Cost (issue 18: one message with 64,000 References took 41 s, because
every link walked up the chain built so far).  Each message keeps at most
L{imapd.sort.keys.MAX_REFERENCES} ids, and the loop check of steps 1.A
and 1.B ("is this container an ancestor of that one?") is a question
about roots only: a container is linked only when it has no parent, so
linking C{c} under C{prev} makes a loop exactly when C{prev}'s root is
C{c}.  L{_Roots} answers it with cached ancestor hints compressed along
the walked path (union-find style: linking a root under a node keeps
every cached ancestor an ancestor), so a message's References chain costs
time linear in its length.  Only moving a container that has children
to another parent (step 1.B, at most once per message) can make a hint
wrong; that drops all hints at once.  Every message ends with
L{imapd.cancel.check}, so the work stops when the client leaves.
"""

from __future__ import annotations

from typing import Callable, Iterable, Optional

from imapd import cancel
from imapd.sort.keys import MAX_REFERENCES, SortItem

__all__ = ["ALGORITHMS", "thread_items", "format_threads", "Node"]


class Node:
    """
    A container of the REFERENCES algorithm: a message, or a dummy
    (C{item} is None) standing for a referenced message we don't have.
    """

    __slots__ = ("item", "parent", "children", "hint", "epoch")

    def __init__(self, item: Optional[SortItem] = None) -> None:
        self.item = item
        self.parent: Optional[Node] = None
        self.children: list[Node] = []
        #: An ancestor of this node when L{_Roots} cached it in C{epoch}.
        self.hint: Optional[Node] = None
        self.epoch = -1

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return "Node(%s, %r)" % (self.item.seq if self.item else "dummy",
                                 self.children)


def _date_key(node: Node) -> tuple[float, int]:
    # A dummy sorts by its first child (RFC 5256 step 6); children are
    # sorted before their parent is, so that child is the earliest.
    while node.item is None:
        node = node.children[0]
    return (node.item.date, node.item.seq)


class _Roots:
    """
    The root of a container's tree, found by walking up cached ancestor
    hints (see the module docstring).  Valid while containers are only
    linked as roots under other containers; L{cut} keeps it valid when one
    is moved.
    """

    def __init__(self) -> None:
        self.epoch = 0

    def root(self, node: Node) -> Node:
        path = []
        n = node
        while True:
            up = n.hint if n.epoch == self.epoch else None
            if up is None:
                up = n.parent
            if up is None:
                break
            path.append(n)
            n = up
        for p in path:
            p.hint, p.epoch = n, self.epoch
        return n

    def cut(self, child: Node) -> None:
        """Take C{child} from its parent (L{_unlink}), keeping hints right."""
        if child.parent is None:
            return
        if child.children:
            # Hints below it may point above it: drop every hint.
            self.epoch += 1
        child.hint = None
        _unlink(child)


def _link(parent: Node, child: Node) -> None:
    child.parent = parent
    parent.children.append(child)


def _unlink(child: Node) -> None:
    parent = child.parent
    if parent is not None:
        parent.children.remove(child)
        child.parent = None


def _postorder(roots: Iterable[Node]) -> list[Node]:
    """Every node below and including C{roots}, children before parents."""
    order: list[Node] = []
    stack = list(roots)
    while stack:
        n = stack.pop()
        order.append(n)
        stack.extend(n.children)
    order.reverse()
    return order


def _sort_siblings(roots: list[Node]) -> None:
    # (6) Youngest siblings first: children before parents, so a dummy's
    # first child is known when the dummy itself is placed.
    for n in _postorder(roots):
        if len(n.children) > 1:
            n.children.sort(key=_date_key)
    roots.sort(key=_date_key)


def _build(items: list[SortItem]) -> list[Node]:
    """REFERENCES steps 1 to 4: link, gather the roots, prune dummies."""
    table: dict[str, Node] = {}
    nodes: list[Node] = []
    roots = _Roots()
    for item in sorted(items, key=lambda i: i.seq):
        cancel.check()
        keys = item.keys
        mid = keys.message_id
        node = table.get(mid) if mid is not None else None
        if node is None or node.item is not None:
            # (1) A missing Message-ID, or a duplicate: the message gets
            # a container of its own, found by no reference.
            node = Node()
            if mid is not None and mid not in table:
                table[mid] = node
            nodes.append(node)
        node.item = item
        # (1.A) Link the references in order, never changing an existing
        # parent and never making a loop: c has no parent, so linking it
        # under prev loops exactly when c is prev's root.  Once c is
        # linked, prev's root is c's too, so a chain of new ids costs no
        # walk at all.
        prev: Optional[Node] = None
        top: Optional[Node] = None  # prev's root, once known
        for ref in keys.references[-MAX_REFERENCES:]:
            c = table.get(ref)
            if c is None:
                c = table[ref] = Node()
                nodes.append(c)
            if prev is not None and c.parent is None:
                if top is None:
                    top = roots.root(prev)
                if top is not c:
                    _link(prev, c)
                    prev = c
                    continue
            prev, top = c, None
        # (1.B) The last reference is the parent; an existing parent came
        # from a truncated References and gives way.
        if node.parent is not prev:
            roots.cut(node)
            if prev is not None and roots.root(prev) is not node:
                _link(prev, node)
    # (2) The root set; (3) the id table is dropped with this function.
    return _prune([n for n in nodes if n.parent is None])


def _prune(roots: list[Node]) -> list[Node]:
    """(4) Delete childless dummies; promote the children of the others."""
    for n in _postorder(roots):
        if not any(c.item is None for c in n.children):
            continue
        kept: list[Node] = []
        for c in n.children:
            if c.item is not None:
                kept.append(c)
                continue
            # (4.A) deleted if childless; (4.B) else its (already pruned)
            # children move up, since below the root promotion is always
            # allowed.
            for g in c.children:
                g.parent = n
            kept.extend(c.children)
        n.children = kept
    out: list[Node] = []
    for r in roots:
        if r.item is None:
            if not r.children:
                continue
            if len(r.children) == 1:
                # (4.B) promote to the root only a single child.
                child = r.children[0]
                child.parent = None
                out.append(child)
                continue
        out.append(r)
    return out


def _thread_subject(node: Node) -> tuple[str, bool]:
    # (5.B) The message's base subject, or its first child's for a dummy.
    while node.item is None:
        node = node.children[0]
    return node.item.keys.subject, node.item.keys.reply


def _merge_subjects(roots: list[Node]) -> list[Node]:
    """(5) Gather the root threads that share a base subject."""
    table: dict[str, Node] = {}
    for r in roots:
        subject, reply = _thread_subject(r)
        if not subject:
            continue  # (5.C)
        old = table.get(subject)
        # (5.E) A dummy beats a message; a non-reply beats a reply.
        if old is None or (old.item is not None and (
                r.item is None or (old.item.keys.reply and not reply))):
            table[subject] = r
    slots = {id(r): i for i, r in enumerate(roots)}
    out: list[Optional[Node]] = list(roots)
    for r in roots:
        slot = slots.get(id(r))
        if r.parent is not None or slot is None or out[slot] is not r:
            continue  # merged below another root already
        subject, reply = _thread_subject(r)
        if not subject:
            continue
        t = table[subject]
        if t is r:
            continue
        if t.item is None and r.item is None:
            # Both dummies: the children become siblings.
            for c in r.children:
                c.parent = t
            t.children.extend(r.children)
            r.children = []
        elif t.item is None or (r.item is not None and reply
                                and not t.item.keys.reply):
            # Under the dummy, or a reply under its original.
            _link(t, r)
        else:
            # Otherwise both go under a new dummy, which takes the
            # table's place and the old root's slot.
            d = Node()
            slot = slots.pop(id(t))
            _link(d, t)
            _link(d, r)
            out[slot] = d
            slots[id(d)] = slot
            table[subject] = d
        out[slots[id(r)]] = None
    return [r for r in out if r is not None]


def references(items: list[SortItem]) -> list[Node]:
    """RFC 5256 section 4, REFERENCES."""
    roots = _build(items)
    # Children are ordered before (5) so that "the first child" of a
    # dummy is its earliest, then again after merging, which moves
    # threads around (Dovecot sorts twice the same way).
    _sort_siblings(roots)
    roots = _merge_subjects(roots)
    _sort_siblings(roots)
    return roots


def refs(items: list[SortItem]) -> list[Node]:
    """Dovecot's REFS: REFERENCES without (5), newest thread last."""
    roots = _build(items)
    _sort_siblings(roots)

    def newest(root: Node) -> tuple[float, int]:
        latest = max(n.item.date for n in _postorder([root])
                     if n.item is not None)
        return (latest, _date_key(root)[1])
    roots.sort(key=newest)
    return roots


def orderedsubject(items: list[SortItem]) -> list[Node]:
    """
    RFC 5256 section 4, ORDEREDSUBJECT: sort by base subject, then sent
    date; split by subject; the first message is the parent of the rest;
    threads ordered by their first message's sent date.
    """
    groups: dict[str, list[SortItem]] = {}
    for item in sorted(items, key=lambda i: (i.keys.subject, i.date, i.seq)):
        groups.setdefault(item.keys.subject, []).append(item)
    roots = []
    for members in groups.values():
        root = Node(members[0])
        for item in members[1:]:
            _link(root, Node(item))
        roots.append(root)
    roots.sort(key=_date_key)
    return roots


#: THREAD algorithm name -> function (RFC 5256 section 4, Dovecot REFS).
ALGORITHMS: dict[str, Callable[[list[SortItem]], list[Node]]] = {
    "ORDEREDSUBJECT": orderedsubject,
    "REFERENCES": references,
    "REFS": refs,
}


def thread_items(algorithm: str, items: list[SortItem]) -> list[Node]:
    """Thread C{items} with the named algorithm (upper case)."""
    return ALGORITHMS[algorithm](list(items))


def _format(root: Node, number: Callable[[SortItem], int], out: list[str]) -> None:
    # thread-members = nz-number *(SP nz-number) [SP thread-nested]: a
    # chain of only children is a flat run; a fork nests a list per child.
    # Iterative, with the pending parentheses and subtrees on a stack:
    # nesting grows at every fork, and a mailbox crafted with a fork at
    # each of thousands of levels (a reply and a follow-up to every
    # message) exhausted Python's stack (issue 18).
    stack: list = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            out.append(node)
            continue
        first = True
        while True:
            if node.item is not None:
                if not first:
                    out.append(" ")
                out.append(str(number(node.item)))
                first = False
            if len(node.children) == 1:
                node = node.children[0]
                continue
            if node.children:
                if not first:
                    out.append(" ")
                for child in reversed(node.children):
                    stack += (")", child, "(")
            break


def format_threads(roots: list[Node], uid: bool) -> bytes:
    """
    The C{* THREAD} response line (RFC 5256 section 5), CRLF included;
    C{uid} chooses UIDs over sequence numbers (UID THREAD).
    """
    number: Callable[[SortItem], int] = (lambda i: i.uid) if uid \
        else (lambda i: i.seq)
    out = ["* THREAD"]
    if roots:
        out.append(" ")
    for root in roots:
        out.append("(")
        _format(root, number, out)
        out.append(")")
    out.append("\r\n")
    return "".join(out).encode("ascii")

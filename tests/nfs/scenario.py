"""
The two-node NFS scenario of issue 20, generic over the store.

One source directory is mounted three times through nfsfuse
(L{nfsmount}): two real daemons (L{e2e_helpers.start_server}) each have
their mail location on their own mount and their own local index and data
directories; an MDA process delivers through the third mount, as procmail
or maildrop would.  Clients on both nodes append (recording APPENDUID),
replace flags (recording the flags each acknowledged STORE set) and
expunge (recording each acknowledged EXPUNGE) for a bounded time.  Then,
once every cache of the mounts has expired, L{check} asks both nodes for
the UID, flags, MODSEQ and Message-ID of every message and counts the
violations of each storage rule (DESIGN.md rules 1-6):

  - C{missing}: an acknowledged message (APPEND or delivery) is gone;
  - C{duplicated}: a Message-ID is listed more than once;
  - C{renumbered}: an appended message's UID is not its APPENDUID;
  - C{expunged_back}: an acknowledged EXPUNGE was undone;
  - C{flags}: a message's flags are not those of its last acknowledged
    STORE (or of its APPEND);
  - C{uidvalidity}: the UIDVALIDITY a client saw changed;
  - C{modseq_backwards}: a MODSEQ (or HIGHESTMODSEQ) is below one a client
    was shown;
  - C{disagree}: the two nodes list different (UID, Message-ID, flags).

Each client touches only its own messages, so "last acknowledged" is
well defined.  The store is a plug-in (L{StoreSpec}): how to prepare the
shared directory, the mail location on a mount, and the MDA that the
third mount's process runs (C{"module:function"}, called as
C{function(mount_path, message_bytes)} in a separate process; see
L{maildir_deliver}).

Command line (the issue's full run)::

    /work/venv/bin/python tests/nfs/scenario.py --store maildir --duration 60 --clients 4
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
for _p in (HERE, REPO / "tests" / "e2e", REPO):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from nfsmount import NFSOptions, mounts  # noqa: E402

USER = "alice"
#: Flag sets a client's STORE chooses from (full replacement, FLAGS).
FLAG_CHOICES = (
    (),
    ("\\Flagged",),
    ("\\Seen",),
    ("\\Seen", "\\Flagged"),
    ("\\Answered", "$Scenario"),
)
INVARIANTS = ("missing", "duplicated", "renumbered", "expunged_back", "flags",
              "uidvalidity", "modseq_backwards", "disagree")


# -- stores -------------------------------------------------------------------

def maildir_prepare(source: Path) -> None:
    """The user's INBOX Maildir, made before anyone delivers to it."""
    for sub in ("cur", "new", "tmp"):
        (source / USER / sub).mkdir(parents=True, exist_ok=True)


def maildir_deliver(mount: Path, message: bytes) -> None:
    """
    Deliver as procmail and maildrop do: write C{tmp/UNIQUE}, fsync, rename
    to C{new/UNIQUE}.  Returning means delivered (acknowledged).
    """
    maildir = mount / USER
    unique = f"{time.time():.6f}.P{os.getpid()}R{os.urandom(4).hex()}.mda"
    tmp = maildir / "tmp" / unique
    with open(tmp, "wb") as f:
        f.write(message)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, maildir / "new" / unique)


@dataclass(frozen=True)
class StoreSpec:
    """How the scenario uses one store."""

    name: str
    #: Prepares the shared (source) directory.
    prepare: object
    #: mount path -> the [mail] location of a node on that mount.
    location: object
    #: "module:function" of the MDA's delivery (run in its own process).
    mda: str
    #: Extra [mail] settings for both nodes.
    mail_settings: dict = field(default_factory=dict)


def mbox_prepare(source: Path) -> None:
    """
    The user's mail directory, nothing in it: the first delivery (or the
    first server to open INBOX) creates the INBOX file, as on a spool.
    """
    (source / USER).mkdir(parents=True, exist_ok=True)


STORES = {
    "maildir": StoreSpec(
        name="maildir",
        prepare=maildir_prepare,
        location=lambda mount: f"maildir:{mount}/%u",
        mda="scenario:maildir_deliver",
    ),
    # INBOX is the file <mount>/alice/inbox, which the MDA (mbox_mda:
    # dotlock, append a From_ message) delivers to, as procmail would.
    "mbox": StoreSpec(
        name="mbox",
        prepare=mbox_prepare,
        location=lambda mount: f"mbox:{mount}/%u:INBOX={mount}/%u/inbox",
        mda="mbox_mda:deliver",
    ),
}


# -- the MDA process ----------------------------------------------------------

def mda_main(argv: list[str]) -> None:
    """
    C{scenario.py --mda MODULE:FUNCTION MOUNT SECONDS}: deliver a message
    every ~0.2 s until the time is up, printing each Message-ID once its
    delivery returned (the MTA's acknowledgement).
    """
    spec, mount, seconds = argv[0], Path(argv[1]), float(argv[2])
    module, _, func = spec.partition(":")
    deliver = getattr(importlib.import_module(module), func)
    rnd = random.Random()
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        n += 1
        mid = f"<mda-{os.getpid()}-{n}@scenario.test>"
        msg = (f"From: mda@example.org\nTo: {USER}@example.org\nSubject: delivery {n}\n"
               f"Message-ID: {mid}\n\nbody {n}\n").encode()
        try:
            deliver(mount, msg)
        except Exception as e:  # reported, and the message is not acknowledged
            print(f"ERROR {mid} {e!r}", flush=True)
        else:
            print(f"DELIVERED {mid}", flush=True)
        time.sleep(rnd.uniform(0.1, 0.3))


# -- clients --------------------------------------------------------------------

@dataclass
class Ledger:
    """What the clients were told (shared by their threads)."""

    mu: threading.Lock = field(default_factory=threading.Lock)
    #: Message-ID -> APPENDUID
    appended: dict = field(default_factory=dict)
    delivered: set = field(default_factory=set)
    #: Message-ID -> flags of the last acknowledged STORE (or the APPEND)
    flags: dict = field(default_factory=dict)
    #: Message-IDs whose last STORE got no answer (flags unknown)
    uncertain: set = field(default_factory=set)
    expunged: set = field(default_factory=set)
    #: Message-IDs whose EXPUNGE was asked for but not acknowledged
    maybe_gone: set = field(default_factory=set)
    uidvalidities: set = field(default_factory=set)
    #: Message-ID -> highest MODSEQ a client was shown for it
    modseqs: dict = field(default_factory=dict)
    highest_modseq: int = 0
    operations: Counter = field(default_factory=Counter)
    errors: list = field(default_factory=list)


def connect(server):
    from imapclient import IMAPClient

    c = IMAPClient(server.host, port=server.port, ssl=False, timeout=120)
    c.starttls(server.ssl_context())
    c.login(server.user, server.password)
    return c


def _appenduid(resp) -> tuple[int, int]:
    m = re.search(rb"APPENDUID (\d+) (\d+)", resp if isinstance(resp, bytes) else resp.encode())
    if not m:
        raise AssertionError(f"APPEND answered without APPENDUID: {resp!r}")
    return int(m.group(1)), int(m.group(2))


def _norm(flags) -> tuple[str, ...]:
    out = []
    for f in flags:
        # (A damaged mailbox may show a number as a keyword; imapclient
        # gives it as an int, which is then simply a wrong flag.)
        f = f.decode() if isinstance(f, bytes) else str(f)
        if f.lower() != "\\recent":
            out.append(f)
    return tuple(sorted(out))


def client_worker(server, name: str, deadline: float, ledger: Ledger) -> None:
    """
    One client: append, replace flags on one of its own messages, expunge
    one, in a random mix, until C{deadline}; every acknowledged answer goes
    into C{ledger}.
    """
    rnd = random.Random(name)
    mine: dict[str, int] = {}     # Message-ID -> APPENDUID, still not expunged
    seq = itertools.count(1)
    try:
        c = connect(server)
        c.enable("CONDSTORE")
        info = c.select_folder("INBOX")
        with ledger.mu:
            ledger.uidvalidities.add(int(info[b"UIDVALIDITY"]))
        while time.monotonic() < deadline:
            try:
                _one_operation(c, rnd, name, mine, seq, ledger)
            except c.Error as e:
                # A NO or BAD: the connection goes on; what it asked for
                # stays uncertain (see Ledger.uncertain).
                with ledger.mu:
                    ledger.errors.append(f"{name}: {e!r}")
        c.logout()
    except Exception as e:
        with ledger.mu:
            ledger.errors.append(f"{name}: {e!r}")


def _one_operation(c, rnd: random.Random, name: str, mine: dict, seq, ledger: Ledger) -> None:
    """One APPEND, STORE or EXPUNGE (and sometimes a STATUS) of a client."""
    op = rnd.random()
    if op < 0.5 or len(mine) < 2:
        n = next(seq)
        mid = f"<{name}-{n}@scenario.test>"
        flags = rnd.choice(FLAG_CHOICES[:3])
        msg = (f"From: {name}@example.org\r\nSubject: {name} {n}\r\n"
               f"Message-ID: {mid}\r\n\r\nbody {n}\r\n").encode()
        resp = c.append("INBOX", msg, flags=flags)
        validity, uid = _appenduid(resp)
        mine[mid] = uid
        with ledger.mu:
            ledger.appended[mid] = uid
            ledger.flags[mid] = _norm(flags)
            ledger.uidvalidities.add(validity)
            ledger.operations["append"] += 1
    elif op < 0.85:
        mid = rnd.choice(sorted(mine))
        flags = rnd.choice(FLAG_CHOICES)
        with ledger.mu:
            ledger.uncertain.add(mid)
        answer = c.set_flags([mine[mid]], list(flags), silent=False)
        modseqs = c.fetch([mine[mid]], ["MODSEQ"])
        with ledger.mu:
            ledger.uncertain.discard(mid)
            ledger.flags[mid] = _norm(flags)
            ledger.operations["store"] += 1
            if not answer:
                ledger.operations["store_ok_without_fetch"] += 1
            for data in modseqs.values():
                seen = int(data[b"MODSEQ"][0])
                ledger.modseqs[mid] = max(seen, ledger.modseqs.get(mid, 0))
    else:
        mid = rnd.choice(sorted(mine))
        uid = mine.pop(mid)
        with ledger.mu:
            ledger.uncertain.add(mid)
            ledger.maybe_gone.add(mid)
        c.add_flags([uid], ["\\Deleted"])
        c.uid_expunge([uid])
        with ledger.mu:
            ledger.expunged.add(mid)
            ledger.operations["expunge"] += 1
    if rnd.random() < 0.2:
        status = c.folder_status("INBOX", ["HIGHESTMODSEQ"])
        with ledger.mu:
            ledger.highest_modseq = max(ledger.highest_modseq, int(status[b"HIGHESTMODSEQ"]))


# -- the check ------------------------------------------------------------------

_MID = re.compile(rb"Message-ID:\s*(<[^>\r\n]*>)", re.I)


def node_view(server) -> dict:
    """UIDVALIDITY, HIGHESTMODSEQ and (uid, Message-ID, flags, modseq) of every message."""
    c = connect(server)
    c.enable("CONDSTORE")
    info = c.select_folder("INBOX", readonly=True)
    uids = c.search("ALL")
    rows = []
    if uids:
        data = c.fetch(uids, ["UID", "FLAGS", "MODSEQ", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
        for uid, v in data.items():
            m = _MID.search(v.get(b"BODY[HEADER.FIELDS (MESSAGE-ID)]") or b"")
            mid = m.group(1).decode() if m else f"(none, uid {uid})"
            rows.append((int(uid), mid, _norm(v[b"FLAGS"]), int(v[b"MODSEQ"][0])))
    c.logout()
    return {"uidvalidity": int(info[b"UIDVALIDITY"]),
            "highestmodseq": int(info.get(b"HIGHESTMODSEQ", 0)),
            "rows": sorted(rows)}


def check(ledger: Ledger, views: list[dict]) -> dict:
    """Violations per invariant (and examples) of the final views."""
    counts = Counter({k: 0 for k in INVARIANTS})
    examples: dict[str, list] = defaultdict(list)

    def bad(kind, what):
        counts[kind] += 1
        if len(examples[kind]) < 5:
            examples[kind].append(what)

    acknowledged = (set(ledger.appended) | ledger.delivered) - ledger.expunged - ledger.maybe_gone
    for i, view in enumerate(views):
        by_mid = defaultdict(list)
        for uid, mid, flags, modseq in view["rows"]:
            by_mid[mid].append((uid, flags, modseq))
        for mid in sorted(acknowledged):
            if mid not in by_mid:
                bad("missing", f"node{i}: {mid}")
        for mid, rows in sorted(by_mid.items()):
            if len(rows) > 1:
                bad("duplicated", f"node{i}: {mid} as UIDs {[r[0] for r in rows]}")
            if mid in ledger.expunged:
                # The APPENDUID says which UID the client expunged: if it is
                # not the UID the message has now, the expunge hit another
                # message that had been given this one's UID.
                bad("expunged_back", f"node{i}: {mid} as UID {rows[0][0]}, "
                                     f"APPENDUID {ledger.appended.get(mid)}")
                continue
            if mid in ledger.appended and any(r[0] != ledger.appended[mid] for r in rows):
                bad("renumbered", f"node{i}: {mid} APPENDUID {ledger.appended[mid]}, "
                                  f"now {[r[0] for r in rows]}")
            if mid in ledger.flags and mid not in ledger.uncertain:
                want = ledger.flags[mid]
                for r in rows:
                    if r[1] != want:
                        bad("flags", f"node{i}: {mid} has {r[1]}, last acknowledged {want}")
            if mid in ledger.modseqs and any(r[2] < ledger.modseqs[mid] for r in rows):
                bad("modseq_backwards", f"node{i}: {mid} MODSEQ {[r[2] for r in rows]} "
                                        f"< {ledger.modseqs[mid]} shown before")
        for v in sorted(ledger.uidvalidities | {view["uidvalidity"]}):
            if v != view["uidvalidity"] or len(ledger.uidvalidities) > 1:
                bad("uidvalidity", f"node{i}: {view['uidvalidity']} vs seen {sorted(ledger.uidvalidities)}")
                break
        if view["highestmodseq"] < ledger.highest_modseq:
            bad("modseq_backwards", f"node{i}: HIGHESTMODSEQ {view['highestmodseq']} "
                                    f"< {ledger.highest_modseq} shown before")
    if len(views) == 2:
        a = {(u, m, f) for u, m, f, _ in views[0]["rows"]}
        b = {(u, m, f) for u, m, f, _ in views[1]["rows"]}
        for row in sorted(a ^ b):
            bad("disagree", f"only on node{0 if row in a else 1}: {row}")
    return {"violations": dict(counts), "examples": dict(examples)}


# -- the run --------------------------------------------------------------------

@dataclass
class Result:
    violations: dict
    examples: dict
    operations: dict
    errors: list
    delivered: int
    messages: int
    seconds: float
    options: NFSOptions

    @property
    def total(self) -> int:
        return sum(self.violations.values())

    def summary(self) -> str:
        return json.dumps({
            "violations": self.violations, "total": self.total,
            "operations": self.operations, "delivered": self.delivered,
            "messages_at_end": self.messages, "seconds": self.seconds,
            "cache_seconds": [self.options.acregmin, self.options.acdirmin],
            "link_replay": self.options.link_replay, "clock_offset": self.options.clock_offset,
            "getattr_lag": [self.options.getattr_lag, self.options.lag_only,
                            self.options.lag_seconds, self.options.open_lag],
            "errors": self.errors[:10], "examples": self.examples,
        }, indent=1, sort_keys=True)


def run_scenario(tmp: Path, tls_files, store: str = "maildir", seconds: float = 20.0,
                 clients_per_node: int = 2, options: NFSOptions = NFSOptions(),
                 settings: dict | None = None, plain: bool = False) -> Result:
    """
    Run the scenario under C{tmp}; C{plain} puts every party straight on
    the source directory instead (the control: a local filesystem).
    """
    from e2e_helpers import start_server

    spec = STORES[store]
    source = tmp / "export"
    source.mkdir(parents=True)
    spec.prepare(source)
    # Two nodes get clock offsets of opposite sign, the MDA's mount none.
    per_mount = [options,
                 replace(options, clock_offset=-options.clock_offset),
                 replace(options, clock_offset=0)]
    started = [] if plain else mounts(source, tmp / "mnt", 3, per_mount)
    paths = [source] * 3 if plain else [m.path for m in started]
    nodes, mda = [], None
    ledger = Ledger()
    try:
        for i in range(2):
            root = tmp / f"node{i}"
            root.mkdir()
            mail = {"location": spec.location(paths[i]), **spec.mail_settings}
            node_settings = {"mail": mail}
            for k, v in (settings or {}).items():
                if isinstance(v, dict):
                    node_settings.setdefault(k, {}).update(v)
                else:
                    node_settings[k] = v
            nodes.append(start_server(root, tls_files, node_settings, name=f"node{i}"))
        mda = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--mda", spec.mda,
             str(paths[2]), str(seconds)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(map(str, (HERE, REPO)))})
        deadline = time.monotonic() + seconds
        t0 = time.monotonic()
        threads = [threading.Thread(target=client_worker,
                                    args=(node, f"n{i}c{k}", deadline, ledger))
                   for i, node in enumerate(nodes) for k in range(clients_per_node)]
        for t in threads:
            t.start()
        out, _ = mda.communicate(timeout=seconds + 120)
        for line in out.splitlines():
            kind, _, rest = line.partition(" ")
            if kind == "DELIVERED":
                ledger.delivered.add(rest.strip())
            elif kind == "ERROR":
                ledger.errors.append(f"mda: {rest}")
            elif line.strip():
                ledger.errors.append(f"mda: {line}")
        for t in threads:
            t.join(timeout=seconds + 300)
        elapsed = time.monotonic() - t0
        # Every cache of the mounts has expired before the check.
        time.sleep(max(options.acregmin, options.acdirmin) + 1.0)
        views = [node_view(node) for node in nodes]
        verdict = check(ledger, views)
        return Result(verdict["violations"], verdict["examples"], dict(ledger.operations),
                      ledger.errors, len(ledger.delivered), len(views[0]["rows"]),
                      round(elapsed, 1), options)
    finally:
        if mda is not None and mda.poll() is None:
            mda.kill()
            mda.wait()
        for node in nodes:
            node.daemon.stop()
        for m in reversed(started):
            m.stop()


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--mda":
        mda_main(argv[1:])
        return 0
    ap = argparse.ArgumentParser(description="issue 20's two-node NFS scenario")
    ap.add_argument("--store", default="maildir", choices=sorted(STORES))
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--clients", type=int, default=4, help="clients per node")
    ap.add_argument("--cache", type=float, default=3.0, help="acregmin = acdirmin seconds")
    ap.add_argument("--link-replay", type=float, default=0.05)
    ap.add_argument("--clock-offset", type=float, default=2.0)
    ap.add_argument("--getattr-lag", type=float, default=0.0,
                    help="mount with racyfuse.py: this share of file stats is late")
    ap.add_argument("--lag-only", default="",
                    help="with --getattr-lag: only stats of files of this name are late")
    ap.add_argument("--lag-seconds", type=float, default=0.1,
                    help="with --getattr-lag: how late at most")
    ap.add_argument("--open-lag", type=float, default=0.0,
                    help="with --getattr-lag: opens return up to this late")
    ap.add_argument("--plain", action="store_true", help="no mounts: the local-filesystem control")
    ap.add_argument("--set", action="append", default=[], metavar="TABLE.KEY=JSON",
                    help="an extra daemon setting, e.g. mail.nfs_storage=false")
    a = ap.parse_args(argv)
    settings: dict = {}
    for item in a.set:
        key, _, value = item.partition("=")
        table, _, name = key.partition(".")
        settings.setdefault(table, {})[name] = json.loads(value)
    from imapd.tls import generate_self_signed

    with tempfile.TemporaryDirectory(prefix="nfs-scenario-") as d:
        tmp = Path(d)
        cert, key = str(tmp / "cert.pem"), str(tmp / "key.pem")
        generate_self_signed(cert, key, "localhost")
        result = run_scenario(tmp / "run", (cert, key), a.store, a.duration, a.clients,
                              NFSOptions(a.cache, a.cache, a.link_replay, a.clock_offset,
                                         a.getattr_lag, a.lag_only, a.lag_seconds,
                                         open_lag=a.open_lag),
                              settings, a.plain)
    print(result.summary())
    return 1 if result.total else 0


if __name__ == "__main__":
    sys.exit(main())

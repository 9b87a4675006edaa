"""
The cost of the NFS-safe options (issue 20), measured with imapbench:
one daemon on a Maildir corpus in a plain directory, then on an nfsfuse
mount of it with C{[mail] nfs_storage} off and on.  Not a test (bounded
runs, on loopback only); prints imapbench's tables and the medians side
by side.

    /work/venv/bin/python tests/nfs/bench_nfs.py --messages 2000
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
for _p in (HERE, REPO / "tests" / "e2e", REPO):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from nfsmount import SHARED, NFSMount, NFSOptions  # noqa: E402

BENCH = SHARED / "bench" / "imapbench.py"
OPS = "select,fetch_list,search_flags,store_flags,append"


def bench(server, label: str, out: Path, repeat: int, append_count: int) -> dict:
    path = out / f"{label}.json"
    subprocess.run([sys.executable, str(BENCH), "run", "--host", server.host,
                    "--port", str(server.port), "--user", server.user,
                    "--password", server.password, "--ops", OPS, "--repeat", str(repeat),
                    "--append-count", str(append_count), "--label", label,
                    "--json", str(path)], check=True)
    return json.loads(path.read_text())


def medians(result: dict) -> dict:
    """op -> (median ms, status) of one C{run --json} document."""
    return {name: (round(r["median_ms"], 1) if "median_ms" in r else None, r["status"])
            for name, r in result["ops"].items()}


def main() -> int:
    from e2e_helpers import start_server
    from imapd.tls import generate_self_signed

    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--append-count", type=int, default=200)
    ap.add_argument("--cache", type=float, default=3.0)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="nfs-bench-") as d:
        tmp = Path(d)
        cert, key = str(tmp / "cert.pem"), str(tmp / "key.pem")
        generate_self_signed(cert, key, "localhost")
        corpus = tmp / "corpus"
        subprocess.run([sys.executable, str(BENCH), "corpus", "--out", str(corpus),
                        "--messages", str(a.messages), "--uidlist"], check=True,
                       stdout=subprocess.DEVNULL)
        export = tmp / "export"
        export.mkdir()
        shutil.copytree(corpus, export / "alice")
        mount = NFSMount(export, tmp / "mnt",
                         NFSOptions(a.cache, a.cache, 0.0, 0.0)).start()
        results = {}
        try:
            runs = [("plain", export, "auto"), ("nfs-off", mount.path, False),
                    ("nfs-on", mount.path, True)]
            for label, where, flag in runs:
                root = tmp / label
                root.mkdir()
                server = start_server(root, (cert, key), {"mail": {
                    "location": f"maildir:{where}/%u", "nfs_storage": flag}}, name=label)
                try:
                    results[label] = bench(server, label, tmp, a.repeat, a.append_count)
                finally:
                    server.daemon.stop()
        finally:
            mount.stop()
        table = {label: medians(r) for label, r in results.items()}
        print(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

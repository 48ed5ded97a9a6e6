"""voltx.vastai.data_sync — show the transfers' progress.

Waits up to --wait seconds, returning early once every progress file is in a final state
(done/failed), then prints one line per archive: bytes, percentage, rate, ETA, attempt, method.
Stdlib only.
"""

import argparse
import json
import sys
import time

# One copy of the shared helpers: data_sync_remote.py lies next to this file (voltx.vastai.scripts).
from data_sync_remote import human  # pylint: disable=import-error


def duration(s):
    if s is None:
        return "?"
    s = int(s)
    return "%d:%02d:%02d" % (s // 3600, s % 3600 // 60, s % 60)


def read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {"archive": path, "state": "starting"}


def line(p):
    total = p.get("total") or 0
    done = p.get("bytes") or 0
    pct = 100.0 * done / total if total else 0.0
    s = "%-16s %-10s %10s / %-10s %5.1f%%" % (p.get("archive"), p.get("state"), human(done), human(total), pct)
    if p.get("state") == "streaming":
        s += "  %s/s  ETA %s" % (human(p.get("rate")), duration(p.get("eta")))
    if p.get("attempt"):
        s += "  attempt %s" % p["attempt"]
    if p.get("method"):
        s += " (%s)" % p["method"]
    if p.get("state") in ("done", "failed", "skipped"):
        s += "  sent %s in %s" % (human(p.get("sent")), duration(p.get("updated", 0) - p.get("started", 0)))
    return s


def main(argv=None):
    ap = argparse.ArgumentParser(prog="data_sync_progress.py")
    ap.add_argument("--wait", type=float, default=15)
    ap.add_argument("files", nargs="*")
    a = ap.parse_args(argv)
    deadline = time.time() + a.wait
    while True:
        states = [read(f) for f in a.files]
        if all(p.get("state") in ("done", "failed", "skipped") for p in states) or time.time() >= deadline:
            break
        time.sleep(0.5)
    for p in states:
        print(line(p))
    return 0


if __name__ == "__main__":
    sys.exit(main())

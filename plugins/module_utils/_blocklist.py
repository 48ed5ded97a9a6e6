# -*- coding: utf-8 -*-
# Copyright: (c) 2026, voltx engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The persistent machine blocklist: a JSON file on the controller listing the physical machines (``machine_id``)
never to rent again, each with the reason and the date. No Ansible and no HTTP here.

``{"machines": [{"machine_id": 38411, "reason": "burn-in: ...", "date": "2026-12-04T14:30:00Z",
"instance_id": 28765432}]}``
"""

from __future__ import annotations

import json
import os
import tempfile
import time

BLOCKLIST_ENV = "VOLTX_VASTAI_BLOCKLIST"
DEFAULT_BLOCKLIST = "~/.local/state/voltx-vastai/blocklist.json"


def blocklist_path(explicit=None, environ=None):
    """The file: ``explicit``, else $VOLTX_VASTAI_BLOCKLIST, else ~/.local/state/voltx-vastai/blocklist.json."""
    environ = os.environ if environ is None else environ
    return os.path.expanduser(explicit or environ.get(BLOCKLIST_ENV) or DEFAULT_BLOCKLIST)


def load_blocklist(path):
    """The entries of the file; [] when it does not exist. Raises ValueError naming the file when it is malformed."""
    try:
        with open(path) as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise ValueError("The machine blocklist %s cannot be read (%s): fix or remove it." % (path, exc))
    entries = data.get("machines") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not all(
            isinstance(e, dict) and isinstance(e.get("machine_id"), int) and not isinstance(e["machine_id"], bool)
            for e in entries):
        raise ValueError("The machine blocklist %s is not {\"machines\": [{\"machine_id\": <int>, ...}]}: fix or "
                         "remove it." % path)
    return entries


def blocked_machines(entries):
    return sorted(set(e["machine_id"] for e in entries))


def add_to_blocklist(path, machine_id, reason, instance_id=None, now=None):
    """Adds the machine (once) and writes the file atomically, private to the user. Returns True when added."""
    entries = load_blocklist(path)
    if machine_id in blocked_machines(entries):
        return False
    entries.append({"machine_id": int(machine_id), "reason": reason,
                    "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)), "instance_id": instance_id})
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, mode=0o700, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".blocklist-")
    try:
        with os.fdopen(handle, "w") as out:
            json.dump({"machines": entries}, out, indent=1)
            out.write("\n")
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    return True

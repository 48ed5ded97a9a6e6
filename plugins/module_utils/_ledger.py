# -*- coding: utf-8 -*-
# Copyright: (c) 2026, voltx engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The campaign's ledger: a JSON file on the controller (``campaign.json`` in the harvest directory) listing every
destroyed instance of the campaign with its price and lifetime, so that what it cost still counts once the API has
forgotten it. The harvest's report adds them to the money spent. No Ansible and no HTTP here.

``{"instances": [{"id": 28765432, "label": "volt-x-training", "dph": 0.169, "start_time": 1764840000.0,
"end_time": 1764843600.0}]}``
"""

from __future__ import annotations

import json
import os
import tempfile


def record_instances(path, rows):
    """Adds each row not yet in the ledger (by id) and writes the file atomically, private to the user.
    Returns the ids added."""
    try:
        with open(path) as handle:
            ledger = json.load(handle)
    except FileNotFoundError:
        ledger = {"instances": []}
    except (OSError, ValueError) as exc:
        raise ValueError("The campaign's ledger %s cannot be read (%s): fix or remove it." % (path, exc))
    known = set(str(r.get("id")) for r in ledger["instances"])
    added = [row for row in rows if str(row["id"]) not in known]
    if not added:
        return []
    ledger["instances"].extend(added)
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, mode=0o700, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".campaign-")
    try:
        with os.fdopen(handle, "w") as out:
            json.dump(ledger, out, indent=1, sort_keys=True)
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    return [row["id"] for row in added]

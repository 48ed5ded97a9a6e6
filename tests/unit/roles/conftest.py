"""The roles' scripts are plain files, not packages: put their directories on sys.path (voltx.vastai.scripts ships
them, one directory), with layout.py (the campaign's defaults as the roles see them)."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
for rel in ("roles/scripts/files", "roles/campaign/files", "tests/unit/roles"):
    path = os.path.join(ROOT, rel)
    if path not in sys.path:
        sys.path.insert(0, path)

"""Makes the checkout importable as ``ansible_collections.voltx.vastai`` for every test."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, ".build")
LINK = os.path.join(BUILD, "ansible_collections", "voltx", "vastai")

if not os.path.islink(LINK):
    os.makedirs(os.path.dirname(LINK), exist_ok=True)
    os.symlink(os.path.relpath(ROOT, os.path.dirname(LINK)), LINK)
if BUILD not in sys.path:
    sys.path.insert(0, BUILD)
for extra in (os.path.join(ROOT, "tests", "emulator"),):
    if extra not in sys.path:
        sys.path.insert(0, extra)

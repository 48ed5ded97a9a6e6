"""Load one of data_sync's scripts by its path (they are plain files shipped by the role, not a package)."""

import importlib.util
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
FILES = os.path.join(ROOT, "roles", "data_sync", "files")


def script(name):
    """The module of roles/data_sync/files/NAME.py (one instance per name, shared by the tests)."""
    if name in sys.modules and getattr(sys.modules[name], "__file__", "") == os.path.join(FILES, name + ".py"):
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, os.path.join(FILES, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module

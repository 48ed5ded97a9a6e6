"""Load one of data_sync's scripts by its path (plain files shipped by voltx.vastai.scripts, not a package)."""

import hashlib
import importlib.util
import io
import os
import sys
import tarfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
FILES = os.path.join(ROOT, "roles", "scripts", "files")


def script(name):
    """The module of roles/scripts/files/NAME.py (one instance per name, shared by the tests)."""
    if name in sys.modules and getattr(sys.modules[name], "__file__", "") == os.path.join(FILES, name + ".py"):
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, os.path.join(FILES, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def sha(data):
    return hashlib.sha256(data).hexdigest()


def tar_bytes(members):
    """An uncompressed tar of {member path: bytes}, as the role's pack writes them (PAX)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()

"""voltx.vastai.data_sync — the controller-side pre-flight: check the local files, pack the archives.

Reads a JSON request (argument or file) with:
  files      {"checkpoints": {name: path}, "datasets": {name: path}, "stack_python": path,
              "stack_multilang": {lang: path}}
  layout     {"checkpoints": "checkpoints", "data": "data",
              "stack_python": "data/python_sample.jsonl", "multilang": "data/multilang"}
  names      {"staging": "VoltStaging", "stack_python": "stack_python", "stack_multilang": "stack_multilang"}
  staging_dir, manifest, codec (zstd|gzip), level, threads, tools (extra commands the controller needs)

  check  list every missing or empty input and every missing tool at once (JSON, never fails)
  pack   build each archive whose inputs changed (tar stream -> zstd -T/pigz -p, hashing every
         member and the archive on the way), reuse the others, write the manifest atomically.
         --dry-run reports what would be packed and writes nothing.
Stdlib only.
"""

import argparse
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import threading
import time

# One copy of the shared helpers: data_sync_remote.py lies next to this file (voltx.vastai.scripts).
from data_sync_remote import human  # pylint: disable=import-error

CHUNK = 1 << 20
SUFFIX = {"zstd": ".tar.zst", "gzip": ".tar.gz"}


def plan_archives(req):
    """The three archives of the guide: [(key, name, [(dest_rel, label, source)])]."""
    files, layout, names = req["files"], req["layout"], req["names"]
    staging = []
    for name, src in sorted((files.get("checkpoints") or {}).items()):
        staging.append(("%s/%s" % (layout["checkpoints"].strip("/"), name), "checkpoints: " + name, src))
    for name, src in sorted((files.get("datasets") or {}).items()):
        staging.append(("%s/%s" % (layout["data"].strip("/"), name), "datasets: " + name, src))
    python = [(layout["stack_python"].strip("/"), "stack_python", files.get("stack_python") or "")]
    multi = []
    for lang, src in sorted((files.get("stack_multilang") or {}).items()):
        multi.append(("%s/%s/%s_sample.jsonl" % (layout["multilang"].strip("/"), lang, lang),
                      "stack_multilang: " + lang, src))
    return [("staging", names["staging"], staging), ("stack_python", names["stack_python"], python),
            ("stack_multilang", names["stack_multilang"], multi)]


def compressor(codec, level, threads):
    if codec == "zstd":
        return ["zstd", "-q", "-%d" % level, "-T%d" % threads, "-c"]
    if shutil.which("pigz"):
        return ["pigz", "-%d" % level, "-c"] + (["-p", str(threads)] if threads > 0 else [])
    return ["gzip", "-%d" % level, "-c"]


def tools_needed(req):
    codec_tool = "zstd" if req["codec"] == "zstd" else ("pigz" if req.get("require_pigz", True) else "gzip")
    return [codec_tool] + list(req.get("tools", []))


def check(req):
    problems, tools_missing = [], []
    for key, name, members in plan_archives(req):
        if not members:
            problems.append("%s (%s): no files are mapped to it in data_sync_local_files" % (name, key))
        for dest, label, src in members:
            if not src:
                problems.append("%s -> %s: no local path set" % (label, dest))
                continue
            src = os.path.expanduser(src)
            try:
                st = os.stat(src)
            except OSError:
                problems.append("%s -> %s: %s does not exist" % (label, dest, src))
                continue
            if not os.path.isfile(src):
                problems.append("%s -> %s: %s is not a regular file" % (label, dest, src))
            elif st.st_size == 0:
                problems.append("%s -> %s: %s is empty" % (label, dest, src))
            elif not os.access(src, os.R_OK):
                problems.append("%s -> %s: %s is not readable" % (label, dest, src))
    for tool in tools_needed(req):
        if not shutil.which(tool):
            tools_missing.append(tool)
    return {"ok": not problems and not tools_missing, "problems": problems, "tools_missing": tools_missing,
            "inputs": sum(len(m) for _name, _path, m in plan_archives(req))}


class HashingReader:
    def __init__(self, f):
        self.f, self.sha, self.n = f, hashlib.sha256(), 0

    def read(self, size=-1):
        data = self.f.read(size)
        self.sha.update(data)
        self.n += len(data)
        return data


def write_progress(path, obj):
    if not path:
        return
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def pack_one(req, name, members, out_path, progress):
    """Stream a tar of members into the compressor; hash members and the archive on the way."""
    cmd = compressor(req["codec"], req["level"], req["threads"])
    tmp = out_path + ".tmp"
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    result = {"size": 0, "sha": hashlib.sha256()}

    def drain():
        with open(tmp, "wb") as out:
            for chunk in iter(lambda: proc.stdout.read(CHUNK), b""):
                result["sha"].update(chunk)
                result["size"] += len(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())

    t = threading.Thread(target=drain)
    t.start()
    done, total = 0, sum(os.stat(os.path.expanduser(s)).st_size for _name, _arcname, s in members)
    entries = []
    try:
        with tarfile.open(fileobj=proc.stdin, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for dest, _label, src in members:
                src = os.path.expanduser(src)
                st = os.stat(src)
                ti = tarfile.TarInfo(dest)
                ti.size, ti.mtime, ti.mode = st.st_size, int(st.st_mtime), 0o644
                ti.uid = ti.gid = 0
                ti.uname = ti.gname = "root"
                with open(src, "rb") as f:
                    hr = HashingReader(f)
                    tar.addfile(ti, hr)
                if hr.n != st.st_size:
                    raise RuntimeError("%s changed while it was packed" % src)
                done += hr.n
                entries.append({"path": dest, "size": hr.n, "sha256": hr.sha.hexdigest(), "source": src,
                                "mtime_ns": st.st_mtime_ns})
                write_progress(progress, {"archive": name, "state": "packing", "bytes": done, "total": total,
                                          "updated": time.time()})
        proc.stdin.close()
    except BaseException:
        proc.kill()
        t.join()
        proc.wait()
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    t.join()
    if proc.wait() != 0:
        os.unlink(tmp)
        raise RuntimeError("%s failed with rc %d" % (" ".join(cmd), proc.returncode))
    os.replace(tmp, out_path)
    return entries, result["size"], result["sha"].hexdigest()


def up_to_date(old, file_name, out_path, req, members):
    """The archive on disk matches what the manifest says and is newer than every input."""
    if not old or old.get("file") != file_name or old.get("codec") != req["codec"] or old.get("level") != req["level"]:
        return False
    try:
        ast = os.stat(out_path)
    except OSError:
        return False
    if ast.st_size != old.get("size"):
        return False
    recorded = [(m["path"], m["source"], m["size"], m.get("mtime_ns")) for m in old.get("members", [])]
    current = []
    for dest, _label, src in members:
        src = os.path.expanduser(src)
        st = os.stat(src)
        if st.st_mtime_ns > ast.st_mtime_ns:
            return False
        current.append((dest, src, st.st_size, st.st_mtime_ns))
    return recorded == current


def make_private(paths):
    """Directories 0700, files 0600 (the user's data and model are nobody else's); True when a mode changed."""
    changed = False
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            continue
        want = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
        if stat.S_IMODE(st.st_mode) != want:
            os.chmod(path, want)
            changed = True
    return changed


def where_written(staging, archives, packed, dry_run):
    """The line that tells the user where the archives live on the controller, what they take and what is left."""
    folder = staging
    while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)  # check mode: the staging dir may not exist yet
    free = os.statvfs(folder)
    line = "Archives in %s: %s, %s free there" % (staging, human(sum(a["size"] for a in archives)),
                                                  human(free.f_bavail * free.f_frsize))
    if dry_run and packed:
        line += "; would pack %s (up to their unpacked size)" % ", ".join(packed)
    return line


def pack(req, dry_run=False, progress=None):
    staging = os.path.expanduser(req["staging_dir"])
    manifest_path = os.path.expanduser(req["manifest"])
    try:
        with open(manifest_path, encoding="utf-8") as f:
            old = {a["name"]: a for a in json.load(f).get("archives", [])}
    except (OSError, ValueError, KeyError):
        old = {}
    archives, packed, reused = [], [], []
    if not dry_run:
        os.makedirs(staging, mode=0o700, exist_ok=True)
    for key, name, members in plan_archives(req):
        file_name = name + SUFFIX[req["codec"]]
        out_path = os.path.join(staging, file_name)
        if up_to_date(old.get(name), file_name, out_path, req, members):
            archives.append(dict(old[name], path=out_path, key=key))
            reused.append(name)
            continue
        packed.append(name)
        if dry_run:
            continue
        started = time.time()
        entries, size, sha = pack_one(req, name, members, out_path, progress)
        archives.append({"name": name, "key": key, "file": file_name, "path": out_path, "codec": req["codec"],
                         "level": req["level"], "size": size, "sha256": sha, "members": entries,
                         "seconds": round(time.time() - started, 2)})
    changed = bool(packed)
    if not dry_run and (changed or not os.path.exists(manifest_path)):
        manifest = {"format": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "codec": req["codec"], "archives": archives}
        tmp = manifest_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, manifest_path)
        changed = True
    if not dry_run and make_private([staging, manifest_path] + [a["path"] for a in archives]):
        changed = True
    summary = [where_written(staging, archives, packed, dry_run)] + ["%s: %s (%d files, %s unpacked)%s" % (
        a["file"], human(a["size"]), len(a["members"]), human(sum(m["size"] for m in a["members"])),
        "" if a["name"] in reused else " packed") for a in archives]
    return {"changed": changed, "packed": packed, "reused": reused, "manifest": manifest_path,
            "manifest_exists": os.path.exists(manifest_path), "summary": summary, "dry_run": dry_run,
            "archive_bytes": sum(a["size"] for a in archives),
            "extracted_bytes": sum(m["size"] for a in archives for m in a["members"])}


def main(argv=None):
    ap = argparse.ArgumentParser(prog="data_sync_pack.py")
    ap.add_argument("command", choices=["check", "pack"])
    ap.add_argument("--request", required=True, help="JSON text, or @FILE")
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--progress")
    a = ap.parse_args(argv)
    # Everything written here (archives, manifest, temporary files) is readable by the user only.
    os.umask(0o077)
    if a.request.startswith("@"):
        with open(a.request[1:], encoding="utf-8") as f:
            req = json.load(f)
    else:
        req = json.loads(a.request)
    if a.command == "check":
        print(json.dumps(check(req)))
        return 0
    res = check(req)
    if not res["ok"]:
        print(json.dumps(dict(res, changed=False)))
        return 2
    print(json.dumps(pack(req, a.dry_run, a.progress)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

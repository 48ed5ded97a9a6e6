"""Artifact inventory, transfer bookkeeping and verification for voltx.vastai.harvest.

On the instance (copied with checkpoint.py into a temporary directory that is removed afterwards):
  artifacts.py probe ROOT PATTERNS_JSON STATUS_JSON
      JSON {"files": [...], "status": {...}}: every file under ROOT matching a pattern, with size, sha256 and a
      structural check (.safetensors header/length; a codebook present, non-empty, not growing, of the expected
      size/format when STATUS_JSON's "codebook" says so); plus the jobs' state, GPU use and disk.
  artifacts.py prune-remote ROOT KEEP VERIFIED_JSON
      Deletes epoch checkpoints beyond the newest KEEP per stage, only those the controller holds verified copies of.

On the controller:
  artifacts.py claim DEST INSTANCE [join]
      DEST holds one campaign's results: manifest.json's "instances" (the instance it began on, then those
      recover.yml continued it on). Any other instance begins a new campaign: the earlier one's files are moved,
      whole, to DEST/earlier/<its last instance id>/ first. "join" (the restore onto a replacement) adds INSTANCE.
  artifacts.py safe DEST INSTANCE FINALS_JSON
      which final artifacts the controller holds as verified copies of INSTANCE's (its manifest's record, sha256
      unchanged): what an instance that cannot be reached may be destroyed with.
  artifacts.py plan DEST [ONLY_JSON] < PROBE_JSON
      which remote files to pull (missing locally or another sha256); with ONLY, a list of glob patterns, only the
      files matching one of them are considered (the codebook alone, or the logs alone for a status report).
  artifacts.py restore-plan DEST LAYOUT_JSON what a new instance needs to go on where a lost one stopped
  artifacts.py settle DEST < {"plan", "probe", "finals", "keep", "codebook", "instance"}
      accepts pulled temporaries whose sha256 and structure match (renamed into place), rejects the others, applies
      the local retention, checks every expected final artifact against the instance, rewrites manifest.json: each
      file's sha256, size and the instances it was verified to be a copy of.

Standard library, plus checkpoint.py (the artifact checker, the only one) and data_sync_remote.py (the byte helpers),
its siblings in voltx.vastai.scripts and copied with it to the instance. Files are compared by sha256; a download is
renamed into place only when it matches.
"""
import fnmatch
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

# The one artifact checker, which the training scripts run too; a sibling of this file on both hosts.
from checkpoint import EPOCH_RE, Invalid, check as _check  # noqa: E402  pylint: disable=import-error
# The one whole-file sha256, data_sync's; it comes along the same way.
from data_sync_remote import sha256_file  # noqa: E402  pylint: disable=import-error

# How codebooks are checked (harvest_codebook_format / harvest_codebook_size); set by main().
CODEBOOK = {"codebook_format": "generic", "codebook_size": 0}


def prefix_sha256(path, size):
    h, left = hashlib.sha256(), size
    with open(path, "rb") as f:
        while left > 0:
            block = f.read(min(left, 1 << 20))
            if not block:
                return None
            h.update(block)
            left -= len(block)
    return h.hexdigest()


def check(path, name=None, settle_s=0):
    """Structural check by the extension of NAME (default: PATH). On the instance a codebook must also stand
    still for a second (settle_s=1: not being written); a downloaded copy cannot change."""
    return _check(path, name, settle_s=settle_s, **CODEBOOK)


def describe(root, rel):
    path = os.path.join(root, rel)
    st = os.stat(path)
    entry = {"path": rel, "size": st.st_size, "mtime": int(st.st_mtime), "sha256": sha256_file(path), "valid": True}
    try:
        info = check(path, settle_s=1 if rel.endswith(".bin") else 0)
        entry["kind"], entry["metadata"] = info["kind"], info["metadata"]
    except (Invalid, OSError) as exc:
        entry.update(valid=False, error=str(exc), kind="invalid", metadata={})
    m = EPOCH_RE.search(rel)
    if m:
        entry["epoch"] = int(entry["metadata"].get("epoch", m.group(1)) if entry["valid"] else m.group(1))
        entry["stage_output"] = entry["metadata"].get("stage_output", "")
    return entry


def job_status(root, state_dir, log_dir, jobs, session):
    out = {}
    for job in jobs:
        alive = False
        try:
            pid = int(open(os.path.join(root, state_dir, job + ".pid")).read().strip())
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                alive = b"bash" in f.read()
        except (OSError, ValueError):
            pass
        marker = None
        try:
            marker = json.load(open(os.path.join(root, log_dir, job + ".exit")))
        except (OSError, ValueError):
            pass
        out[job] = {"alive": alive, "marker": marker}
    try:
        session_alive = subprocess.call(["tmux", "has-session", "-t", "=" + session],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0
    except OSError:
        session_alive = False
    return session_alive, out


def gpu_status():
    try:
        out = subprocess.check_output(
            ["nvidia-smi", "--query-gpu=name,utilization.gpu,memory.used,memory.total",
             "--format=csv,noheader,nounits"], stderr=subprocess.DEVNULL, timeout=30).decode()
    except (OSError, subprocess.SubprocessError):
        return None
    gpus = []
    for line in out.strip().splitlines():
        f = [x.strip() for x in line.split(",")]
        if len(f) >= 4:
            gpus.append({"name": f[0], "utilization_pct": f[1], "memory_used_mib": f[2], "memory_total_mib": f[3]})
    return gpus


def probe(root, patterns, status):
    rels = set()
    for pattern in patterns:
        for path in glob.glob(os.path.join(root, pattern)):
            if os.path.isfile(path):
                rels.add(os.path.relpath(path, root))
    files = [describe(root, rel) for rel in sorted(rels)]
    stamps = stage_stamps(root, status.get("state_dir", ""), status.get("stages", []))
    for entry in files:
        if "epoch" in entry:
            entry["stage_output"] = stage_of(os.path.join(root, entry["path"]), stamps) or entry["stage_output"]
    # A fresh instance may not have the workspace yet: nothing to pull, and the disk is the one it would be on.
    existing = root
    while not os.path.isdir(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    st = os.statvfs(existing)
    session_alive, jobs = job_status(root, status["state_dir"], status["log_dir"], status["jobs"], status["session"])
    return {"files": files, "status": {
        "session": status["session"], "session_alive": session_alive, "jobs": jobs, "gpus": gpu_status(),
        "disk": {"total_bytes": st.f_blocks * st.f_frsize, "free_bytes": st.f_bavail * st.f_frsize,
                 "used_bytes": (st.f_blocks - st.f_bfree) * st.f_frsize},
        "now": int(time.time())}}


def stage_stamps(root, state_dir, stages):
    """[(mtime_ns, output)] of the stamps the curriculum leaves when a stage starts (<state_dir>/<log stem>.started),
    oldest first: epoch checkpoints share their names across stages, so their age tells which stage wrote them."""
    stamps = []
    for stage in stages:
        stem = os.path.splitext(os.path.basename(stage["log"]))[0]
        try:
            stamps.append((os.stat(os.path.join(root, state_dir, stem + ".started")).st_mtime_ns, stage["output"]))
        except OSError:
            continue
    return sorted(stamps)


def stage_of(path, stamps):
    """The output of the stage that wrote the epoch checkpoint PATH: the newest stamp older than the file."""
    mtime = os.stat(path).st_mtime_ns
    owner = None
    for started, output in stamps:
        if started < mtime:
            owner = output
    return owner


def restore_plan(dest, layout):
    """What a new instance needs from the controller to go on where a lost one stopped: the codebook with its
    job marker, each finished stage's output, log and marker, then the stage in flight's log and its newest epoch
    checkpoint (RESUME: the stamp to date before it, so the curriculum resumes from it). LAYOUT is the campaign's
    (log_dir, codebook_job, codebook_output, stages), with paths relative to the workspace."""
    def held(rel):
        return os.path.isfile(os.path.join(dest, rel)) and os.path.getsize(os.path.join(dest, rel)) > 0

    def finished(marker):
        try:
            with open(os.path.join(dest, marker)) as f:
                return json.load(f).get("status") == 0
        except (OSError, ValueError):
            return False

    copies, resume = [], None
    codebook_marker = os.path.join(layout["log_dir"], layout["codebook_job"] + ".exit")
    if held(layout["codebook_output"]) and finished(codebook_marker):
        copies += [layout["codebook_output"], codebook_marker]
    for stage in layout["stages"]:
        log = os.path.join(layout["log_dir"], os.path.basename(stage["log"]))
        marker = os.path.splitext(log)[0] + ".exit"
        if held(stage["output"]) and finished(marker):
            copies += [stage["output"], log, marker]
            continue
        if held(log):
            copies.append(log)
        stem = os.path.splitext(os.path.basename(stage["output"]))[0]
        epochs = glob.glob(os.path.join(dest, os.path.dirname(stage["output"]), "epochs", stem,
                                        "scaled_vfn_epoch_*.safetensors"))
        newest = max(epochs, key=lambda p: int(EPOCH_RE.search(p).group(1)), default=None)
        if newest:
            resume = {"local": os.path.relpath(newest, dest),
                      "remote": os.path.join(os.path.dirname(stage["output"]), os.path.basename(newest)),
                      "stamp": os.path.splitext(os.path.basename(stage["log"]))[0] + ".started",
                      "epoch": int(EPOCH_RE.search(newest).group(1)), "stage_output": stage["output"]}
        break
    return {"copies": [{"local": rel, "remote": rel} for rel in copies], "resume": resume}


def local_rel(entry):
    """Epoch checkpoints share names across stages on the instance; locally each stage gets its own folder."""
    if "epoch" in entry:
        stage = os.path.splitext(os.path.basename(entry.get("stage_output") or "unknown-stage"))[0]
        return os.path.join(os.path.dirname(entry["path"]), "epochs", stage, os.path.basename(entry["path"]))
    return entry["path"]


def plan(dest, probe_data, only=None):
    pulls, problems = [], []
    for entry in probe_data["files"]:
        if only is not None and not any(fnmatch.fnmatchcase(entry["path"], pattern) for pattern in only):
            continue
        if not entry["valid"]:
            problems.append({"path": entry["path"], "problem": "corrupt on the instance, not pulled: " + entry["error"]})
            continue
        rel = local_rel(entry)
        local = os.path.join(dest, rel)
        if os.path.isfile(local) and os.path.getsize(local) == entry["size"] and sha256_file(local) == entry["sha256"]:
            continue
        pulls.append({"remote": entry["path"], "local": rel, "sha256": entry["sha256"], "size": entry["size"],
                      "tmp": os.path.join(".partial", rel.replace("/", "__") + ".part")})
    return {"pull": pulls, "problems": problems}


MANIFEST = "manifest.json"
EARLIER = "earlier"
# The campaign's ledger (plugins/module_utils/_ledger.py writes it): the burn-in may add this campaign's casualties to
# it before this campaign's first harvest claims the directory.
LEDGER = "campaign.json"


def read_manifest(dest):
    try:
        with open(os.path.join(dest, MANIFEST)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def claim(dest, instance, join=False):
    """Makes DEST the results of INSTANCE's campaign; moves an earlier campaign's aside (never deletes)."""
    manifest = read_manifest(dest)
    instances = manifest.get("instances", [])
    if not instance or instance in instances:
        return {"instances": instances, "moved": None, "changed": False}
    os.makedirs(dest, mode=0o700, exist_ok=True)
    held = sorted(n for n in os.listdir(dest) if n not in (EARLIER, MANIFEST))
    if held == [LEDGER] and not manifest:
        held = []  # no earlier campaign: the ledger of what this one's burn-in destroyed before its first harvest
    moved = None
    if join:
        instances = instances + [instance]
    elif held or instances:
        name = instances[-1] if instances else "unknown-instance"
        target, n = os.path.join(dest, EARLIER, name), 1
        while os.path.exists(os.path.join(target, MANIFEST)):  # a move cut short is finished in the same place
            n += 1
            target = os.path.join(dest, EARLIER, "%s-%d" % (name, n))
        os.makedirs(target, mode=0o700, exist_ok=True)
        for entry in held + ([MANIFEST] if manifest else []):  # the manifest last: it marks the move done
            os.replace(os.path.join(dest, entry), os.path.join(target, entry))
        if LEDGER in held:
            keep_later_ledger_entries(os.path.join(target, LEDGER), os.path.join(dest, LEDGER), instances)
        moved, manifest, instances = os.path.relpath(target, dest), {}, [instance]
    else:
        instances = [instance]
    write_if_changed(os.path.join(dest, MANIFEST), manifest_text(instances, manifest.get("files", [])))
    return {"instances": instances, "moved": moved, "changed": True}


def keep_later_ledger_entries(earlier_path, path, earlier_instances):
    """Gives back to the new campaign the ledger entries of instances destroyed after the earlier campaign's last one
    (its burn-in casualties); the earlier campaign keeps the rest."""
    with open(earlier_path) as handle:
        ledger = json.load(handle)
    entries = ledger.get("instances", [])
    ends = [e.get("end_time") or 0 for e in entries if str(e.get("id")) in earlier_instances]
    if not ends:
        return
    later = [e for e in entries if (e.get("end_time") or 0) > max(ends) and str(e.get("id")) not in earlier_instances]
    if later:
        write_if_changed(earlier_path, json.dumps(dict(ledger, instances=[e for e in entries if e not in later]),
                                                  indent=1, sort_keys=True))
        write_if_changed(path, json.dumps(dict(ledger, instances=later), indent=1, sort_keys=True))


def safe(dest, instance, finals):
    """Final artifacts held on the controller as verified copies of INSTANCE's, by the manifest, sha256 unchanged."""
    recorded = {f["path"]: f for f in read_manifest(dest).get("files", [])}
    verified, missing = [], []
    for rel in finals:
        entry, local = recorded.get(rel), os.path.join(dest, rel)
        if entry is None or not instance or instance not in entry.get("instances", []):
            missing.append({"path": rel, "reason": "no copy verified as instance %s's" % (instance or "(id unknown)")})
        elif not os.path.isfile(local) or sha256_file(local) != entry["sha256"]:
            missing.append({"path": rel, "reason": "the controller's copy is gone or changed since it was verified"})
        else:
            verified.append({"path": rel, "sha256": entry["sha256"], "size": entry["size"]})
    return {"verified_finals": verified, "missing_finals": missing}


def manifest_text(instances, files):
    return json.dumps({"instances": instances, "files": sorted(files, key=lambda f: f["path"])},
                      indent=1, sort_keys=True) + "\n"


def settle(dest, plan_data, finals, keep, probe_data, instance=""):
    accepted, deferred, problems = [], [], list(plan_data["problems"])
    for item in plan_data["pull"]:
        tmp, final = os.path.join(dest, item["tmp"]), os.path.join(dest, item["local"])
        if not os.path.isfile(tmp):
            problems.append({"path": item["remote"], "problem": "download failed"})
            continue
        got = sha256_file(tmp)
        reason = None
        if got != item["sha256"] and item["local"].endswith(".log") and prefix_sha256(tmp, item["size"]) == item["sha256"]:
            got = item["sha256"]  # a log still being appended to: what the instance had at probe time is its prefix
        if got != item["sha256"]:
            try:
                check(tmp, item["local"])
            except (Invalid, OSError) as exc:
                reason = "sha256 %s differs from the instance's %s and the copy does not verify: %s" % (
                    got[:12], item["sha256"][:12], exc)
            else:  # a valid file replaced on the instance meanwhile (training writes atomically): next run
                os.unlink(tmp)
                deferred.append(item["remote"])
                continue
        else:
            try:
                check(tmp, item["local"])
            except (Invalid, OSError) as exc:
                reason = "downloaded copy does not verify: %s" % exc
        if reason:
            os.unlink(tmp)
            problems.append({"path": item["remote"], "problem": "not accepted: " + reason})
            continue
        os.makedirs(os.path.dirname(final) or ".", exist_ok=True)
        os.replace(tmp, final)
        accepted.append(item["local"])
    shutil.rmtree(os.path.join(dest, ".partial"), ignore_errors=True)
    pruned = prune_local(dest, keep) if keep > 0 else []
    by_path = {e["path"]: e for e in probe_data["files"]}
    earlier = safe(dest, instance, finals) if instance else {"verified_finals": []}
    kept_earlier = {f["path"]: f for f in earlier["verified_finals"]}
    verified, missing = [], []
    for rel in finals:
        entry, local = by_path.get(rel), os.path.join(dest, rel)
        if rel in kept_earlier and (entry is None or not entry["valid"]):
            verified.append(kept_earlier[rel])  # an earlier harvest verified this instance's file, since lost there
            continue
        if entry is None:
            reason = "not on the instance"
        elif not entry["valid"]:
            reason = "corrupt on the instance: " + entry["error"]
        elif not os.path.isfile(local):
            reason = "not pulled"
        elif sha256_file(local) != entry["sha256"]:
            reason = "local copy differs from the instance's (sha256)"
        else:
            try:
                check(local)
                reason = None
            except (Invalid, OSError) as exc:
                reason = "local copy does not verify: %s" % exc
        if reason:
            missing.append({"path": rel, "reason": reason})
        else:
            verified.append({"path": rel, "sha256": entry["sha256"], "size": entry["size"]})
    local_sha = {}
    for base, dirs, names in os.walk(dest):
        dirs[:] = [d for d in dirs if d not in (".partial", "report") and (base != dest or d != EARLIER)]
        for name in sorted(names):
            rel = os.path.relpath(os.path.join(base, name), dest)
            if rel != MANIFEST and not rel.endswith(".tmp"):
                local_sha[rel] = sha256_file(os.path.join(dest, rel))
    held = {e["path"]: e["sha256"] for e in probe_data["files"]
            if e["valid"] and local_sha.get(local_rel(e)) == e["sha256"]}
    on_instance = {local_rel(e) for e in probe_data["files"] if e["path"] in held}
    manifest = read_manifest(dest)
    before = {f["path"]: f for f in manifest.get("files", [])}
    files = []
    for rel, sha in local_sha.items():
        ids = list(before[rel].get("instances", [])) if before.get(rel, {}).get("sha256") == sha else []
        if instance and rel in on_instance and instance not in ids:
            ids.append(instance)
        files.append({"path": rel, "sha256": sha, "size": os.path.getsize(os.path.join(dest, rel)), "instances": ids})
    write_if_changed(os.path.join(dest, MANIFEST), manifest_text(manifest.get("instances", []), files))
    # What destroying the instance would lose: only what has no verified copy of THIS instance's on the controller.
    local_of = {e["path"]: local_rel(e) for e in probe_data["files"]}
    kept = {f["path"] for f in files if instance and instance in f["instances"]}
    missing_paths = {m["path"] for m in missing}
    lost = ["%s (%s)" % (m["path"], m["reason"]) for m in missing] + [
        "%s (%s)" % (p["path"], p["problem"]) for p in problems
        if p["path"] not in missing_paths and local_of.get(p["path"], p["path"]) not in kept]
    return {"accepted": accepted, "deferred": deferred, "pruned": pruned, "problems": problems, "verified_finals": verified,
            "missing_finals": missing, "lost": lost, "held": held, "changed": bool(accepted or pruned)}


def prune_local(dest, keep):
    removed = []
    for stage_dir in glob.glob(os.path.join(dest, "*", "epochs", "*")):
        epochs = []
        for path in glob.glob(os.path.join(stage_dir, "scaled_vfn_epoch_*.safetensors")):
            m = EPOCH_RE.search(path)
            epochs.append((int(m.group(1)), path))
        for _epoch, path in sorted(epochs)[:-keep]:
            os.unlink(path)
            removed.append(os.path.relpath(path, dest))
    return removed


def prune_remote(root, keep, verified):
    """verified: {remote path: sha256} of copies the controller holds. Keeps the newest KEEP per stage."""
    stages = {}
    for path in glob.glob(os.path.join(root, "**", "scaled_vfn_epoch_*.safetensors"), recursive=True):
        rel = os.path.relpath(path, root)
        entry = describe(root, rel)
        stages.setdefault(entry.get("stage_output", ""), []).append(entry)
    removed = []
    for entries in stages.values():
        for entry in sorted(entries, key=lambda e: e["epoch"])[:-keep]:
            if verified.get(entry["path"]) == entry["sha256"]:
                os.unlink(os.path.join(root, entry["path"]))
                removed.append(entry["path"])
    return removed


def write_if_changed(path, text):
    try:
        if open(path).read() == text:
            return False
    except OSError:
        pass
    tmp = path + ".tmp"
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return True


def load(arg):
    """A JSON argument, or @FILE holding it."""
    if arg.startswith("@"):
        with open(arg[1:]) as f:
            return json.load(f)
    return json.loads(arg)


def main(argv):
    cmd = argv[0] if argv else ""
    if cmd == "probe" and len(argv) == 4:
        status = load(argv[3])
        CODEBOOK.update(status.get("codebook", {}))
        result = probe(argv[1], load(argv[2]), status)
    elif cmd == "prune-remote" and len(argv) == 4:
        result = {"removed": prune_remote(argv[1], int(argv[2]), load(argv[3]))}
        result["changed"] = bool(result["removed"])
    elif cmd == "restore-plan" and len(argv) == 3:
        result = restore_plan(argv[1], load(argv[2]))
    elif cmd == "plan" and len(argv) in (2, 3):
        result = plan(argv[1], json.load(sys.stdin), load(argv[2]) if len(argv) == 3 else None)
    elif cmd == "settle" and len(argv) == 2:
        doc = json.load(sys.stdin)
        CODEBOOK.update(doc.get("codebook", {}))
        result = settle(argv[1], doc["plan"], doc["finals"], int(doc["keep"]), doc["probe"], doc.get("instance", ""))
    elif cmd == "claim" and len(argv) in (3, 4) and argv[3:] in ([], ["join"]):
        result = claim(argv[1], argv[2], join=argv[3:] == ["join"])
    elif cmd == "safe" and len(argv) == 4:
        result = safe(argv[1], argv[2], load(argv[3]))
    else:
        sys.stderr.write(__doc__)
        return 2
    json.dump(result, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

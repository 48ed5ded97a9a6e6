"""Status report and loss curve for voltx.vastai.harvest (runs on the controller, standard library only).

  report.py INPUT_JSON|-
INPUT_JSON (a file, or stdin for -) holds: dest, report_dir, probe (the instance's status), settle (the harvest's result),
stage_logs (file names in order), codebook_log, log_dir, dph, start_time (epoch seconds or ISO 8601, may be
empty), now (epoch seconds, default: the current time), curriculum_job.
Writes <report_dir>/status.json, status.md and loss.png; prints {"png_changed": bool, "status": {...}}.
The PNG is a plain line plot rasterised here (zlib + struct), so no plotting library is needed; it depends
only on the logs, so an unchanged log gives a byte-identical PNG.
"""
import datetime
import json
import math
import os
import re
import struct
import sys
import time
import zlib

STEP_RE = re.compile(r"^epoch (\d+)/(\d+) step (\d+) loss=([0-9.eE+-]+|nan|inf)")
DONE_RE = re.compile(r"^epoch (\d+)/(\d+) done loss=([0-9.eE+-]+|nan|inf)")
STAGE_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]


def parse_log(path):
    """Per-step and per-epoch losses; a resumed run's lines for an epoch replace the earlier ones."""
    steps, epochs, last = {}, {}, None
    try:
        lines = open(path, errors="replace").read().splitlines()
    except OSError:
        return None
    total = None
    for line in lines:
        m = STEP_RE.match(line)
        if m:
            e, n, s, loss = int(m.group(1)), int(m.group(2)), int(m.group(3)), float(m.group(4))
            steps[(e, s)] = loss
            total, last = n, {"epoch": e, "epochs": n, "step": s, "loss": loss}
            continue
        m = DONE_RE.match(line)
        if m:
            e, n, loss = int(m.group(1)), int(m.group(2)), float(m.group(3))
            epochs[e] = loss
            total, last = n, {"epoch": e, "epochs": n, "step": None, "loss": loss, "epoch_done": True}
    return {"steps": [steps[k] for k in sorted(steps)], "epochs": epochs, "last": last, "epochs_total": total}


def parse_time(value):
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        pass
    text = str(value).strip().replace("Z", "+00:00")
    dt = datetime.datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return dt.timestamp()


# --- a tiny raster plot ----------------------------------------------------------------------------
FONT = {  # 3x5 glyphs, rows top to bottom, 3 bits each
    "0": [7, 5, 5, 5, 7], "1": [2, 6, 2, 2, 7], "2": [7, 1, 7, 4, 7], "3": [7, 1, 7, 1, 7], "4": [5, 5, 7, 1, 1],
    "5": [7, 4, 7, 1, 7], "6": [7, 4, 7, 5, 7], "7": [7, 1, 1, 1, 1], "8": [7, 5, 7, 5, 7], "9": [7, 5, 7, 1, 7],
    ".": [0, 0, 0, 0, 2], "-": [0, 0, 7, 0, 0], "e": [0, 7, 7, 4, 7], " ": [0, 0, 0, 0, 0], "/": [1, 1, 2, 4, 4],
    "S": [7, 4, 7, 1, 7], "E": [7, 4, 7, 4, 7], "L": [4, 4, 4, 4, 7], "O": [7, 5, 5, 5, 7], "T": [7, 2, 2, 2, 2],
    "P": [7, 5, 7, 4, 4], "R": [6, 5, 6, 5, 5], "N": [5, 7, 7, 5, 5], "C": [7, 4, 4, 4, 7], "H": [5, 5, 7, 5, 5],
    "A": [7, 5, 7, 5, 5], "G": [7, 4, 5, 5, 7], "=": [0, 7, 0, 7, 0],
}


class Canvas:
    def __init__(self, w, h):
        self.w, self.h = w, h
        self.px = bytearray(b"\xff" * (w * h * 3))

    def set(self, x, y, c):
        if 0 <= x < self.w and 0 <= y < self.h:
            i = (y * self.w + x) * 3
            self.px[i:i + 3] = bytes(c)

    def line(self, x0, y0, x1, y1, c, width=1):
        n = max(abs(x1 - x0), abs(y1 - y0), 1)
        for i in range(n + 1):
            x, y = round(x0 + (x1 - x0) * i / n), round(y0 + (y1 - y0) * i / n)
            for dx in range(width):
                for dy in range(width):
                    self.set(x + dx - width // 2, y + dy - width // 2, c)

    def rect(self, x0, y0, x1, y1, c):
        for y in range(y0, y1 + 1):
            for x in range(x0, x1 + 1):
                self.set(x, y, c)

    def text(self, x, y, s, c, scale=2):
        for ch in s:
            rows = FONT.get(ch, FONT[" "])
            for r, bits in enumerate(rows):
                for col in range(3):
                    if bits & (4 >> col):
                        x0, y0 = x + col * scale, y + r * scale
                        self.rect(x0, y0, x0 + scale - 1, y0 + scale - 1, c)
            x += 4 * scale

    def png(self):
        raw = b"".join(b"\x00" + bytes(self.px[y * self.w * 3:(y + 1) * self.w * 3]) for y in range(self.h))

        def chunk(kind, data):
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def plot(stages, width=800, height=480):
    """stages: [(label, [step losses])]; x = global step over all stages in order."""
    c = Canvas(width, height)
    left, right, top, bottom = 84, width - 20, 40, height - 50
    black, grey = (0, 0, 0), (200, 200, 200)
    series, x = [], 0
    for i, (_name, losses) in enumerate(stages):
        pts = [(x + j, v) for j, v in enumerate(losses) if not math.isnan(v) and not math.isinf(v)]
        series.append((i, pts, x))
        x += len(losses)
    values = [v for _index, pts, _start in series for _step, v in pts]
    c.text(left, 12, "LOSS PER STEP", black)
    if not values:
        c.text(left + 200, top + 150, "0 STEPS", black, 4)
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    pad = (hi - lo) * 0.05
    lo, hi = lo - pad, hi + pad
    xmax = max(x - 1, 1)

    def px(step, v):
        return (left + round((right - left) * step / xmax), bottom - round((bottom - top) * (v - lo) / (hi - lo)))
    # As many decimals as the grid step needs, so neighbouring labels differ even when the loss barely moves.
    decimals = min(6, max(0, 1 - math.floor(math.log10((hi - lo) / 5))))
    for k in range(6):  # y grid and labels
        v = lo + (hi - lo) * k / 5
        _x, y = px(0, v)
        c.line(left, y, right, y, grey)
        c.text(4, y - 5, "%.*f" % (decimals, v), black)
    for k in range(6):  # x ticks
        step = round(xmax * k / 5)
        xx, _y = px(step, lo)
        c.line(xx, bottom, xx, bottom + 5, black)
        label = str(step)
        c.text(xx - len(label) * 4, bottom + 10, label, black)
    c.line(left, top, left, bottom, black)
    c.line(left, bottom, right, bottom, black)
    for i, pts, start in series:
        colour = STAGE_COLOURS[i % len(STAGE_COLOURS)]
        if start > 0:  # stage boundary
            xx, _y = px(start, lo)
            for y in range(top, bottom, 6):
                c.line(xx, y, xx, y + 2, grey)
        for (s0, v0), (s1, v1) in zip(pts, pts[1:]):
            c.line(*px(s0, v0), *px(s1, v1), colour, 2)
        for s, v in pts[-1:]:
            xx, yy = px(s, v)
            c.rect(xx - 2, yy - 2, xx + 2, yy + 2, colour)
        lx = right - 110 * (len(series) - i)
        c.rect(lx, 12, lx + 12, 22, colour)
        c.text(lx + 18, 12, "STAGE %d" % (i + 1), black)
    c.text(right - 100, height - 18, "STEP", black)
    return c.png()


def human_bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return "%.1f %s" % (n, unit)
        n /= 1024.0


def main(argv):
    cfg = json.load(sys.stdin if argv[0] == "-" else open(argv[0]))
    dest, report_dir = cfg["dest"], cfg["report_dir"]
    status = cfg["probe"]["status"]
    settle = cfg["settle"]
    logs = os.path.join(dest, cfg["log_dir"])
    stages = []
    for i, name in enumerate(cfg["stage_logs"]):
        parsed = parse_log(os.path.join(logs, name))
        if parsed is not None:
            stages.append((i + 1, name, parsed))
    jobs = status.get("jobs", {})
    curriculum = jobs.get(cfg["curriculum_job"], {})
    finished = (curriculum.get("marker") or {}).get("status") == 0
    current = None
    if stages:
        n, name, parsed = stages[-1]
        last = parsed["last"] or {}
        current = {"stage": n, "of": len(cfg["stage_logs"]), "log": name, "epoch": last.get("epoch"),
                   "epochs": parsed["epochs_total"], "step": last.get("step"), "latest_loss": last.get("loss"),
                   "complete": finished}
    now = float(cfg.get("now") or time.time())
    start = parse_time(cfg.get("start_time"))
    dph = float(cfg["dph"]) if cfg.get("dph") not in (None, "") else None
    elapsed_h = (now - start) / 3600.0 if start is not None else None
    cost = {"dph": dph, "start_time": start, "elapsed_hours": round(elapsed_h, 4) if elapsed_h is not None else None,
            "spent_usd": round(dph * elapsed_h, 4) if dph is not None and elapsed_h is not None else None}
    report = {
        "generated": int(now),
        "jobs": {k: {"alive": v.get("alive"), "exit_status": (v.get("marker") or {}).get("status")}
                 for k, v in jobs.items()},
        "session_alive": status.get("session_alive"),
        "current": current,
        "epoch_losses": {name: {str(e): l for e, l in sorted(p["epochs"].items())} for _i, name, p in stages},
        "gpus": status.get("gpus"),
        "disk": status.get("disk"),
        "cost": cost,
        "artifacts": {"verified_finals": [f["path"] for f in settle["verified_finals"]],
                      "missing_finals": settle["missing_finals"], "problems": settle["problems"],
                      "accepted_this_run": settle["accepted"], "pruned_this_run": settle["pruned"],
                      "changed_during_pull": settle.get("deferred", [])},
    }
    os.makedirs(report_dir, exist_ok=True)
    png = plot([(name, p["steps"]) for _i, name, p in stages])
    png_path = os.path.join(report_dir, "loss.png")
    png_changed = not (os.path.exists(png_path) and open(png_path, "rb").read() == png)
    if png_changed:
        with open(png_path + ".tmp", "wb") as f:
            f.write(png)
        os.replace(png_path + ".tmp", png_path)
    with open(os.path.join(report_dir, "status.json.tmp"), "w") as f:
        json.dump(report, f, indent=1, sort_keys=True)
    os.replace(os.path.join(report_dir, "status.json.tmp"), os.path.join(report_dir, "status.json"))
    md = render_md(report)
    with open(os.path.join(report_dir, "status.md.tmp"), "w") as f:
        f.write(md)
    os.replace(os.path.join(report_dir, "status.md.tmp"), os.path.join(report_dir, "status.md"))
    json.dump({"png_changed": png_changed, "status": report}, sys.stdout, sort_keys=True)
    return 0


def render_md(r):
    def ts(v):
        return datetime.datetime.fromtimestamp(v, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ") if v else "unknown"
    out = ["# Training status", "", "Generated %s." % ts(r["generated"]), "", "## Jobs", ""]
    out.append("tmux session: %s" % ("alive" if r["session_alive"] else "not running"))
    out.append("")
    for job, j in sorted(r["jobs"].items()):
        if j["alive"]:
            state = "running"
        elif j["exit_status"] is not None:
            state = "finished, exit status %s" % j["exit_status"]
        else:
            state = "not running, no completion marker"
        out.append("- %s: %s" % (job, state))
    cur = r["current"]
    out += ["", "## Progress", ""]
    if cur:
        out.append("- stage %s of %s (%s)%s" % (cur["stage"], cur["of"], cur["log"], ", complete" if cur["complete"] else ""))
        out.append("- epoch %s of %s%s" % (cur["epoch"], cur["epochs"], ", step %s" % cur["step"] if cur["step"] else ""))
        out.append("- latest loss: %s" % cur["latest_loss"])
    else:
        out.append("- no curriculum log yet")
    for name, losses in sorted(r["epoch_losses"].items()):
        out.append("- %s epoch losses: %s" % (name, ", ".join("%s: %s" % kv for kv in losses.items()) or "none yet"))
    out += ["", "## Machine", ""]
    if r["gpus"]:
        for g in r["gpus"]:
            out.append("- GPU %s: %s%% busy, %s / %s MiB" % (
                g["name"], g["utilization_pct"], g["memory_used_mib"], g["memory_total_mib"]))
    else:
        out.append("- GPU: nvidia-smi not available")
    d = r["disk"] or {}
    if d:
        out.append("- disk: %s used, %s free of %s" % (
            human_bytes(d["used_bytes"]), human_bytes(d["free_bytes"]), human_bytes(d["total_bytes"])))
    c = r["cost"]
    out += ["", "## Cost", ""]
    out.append("- started: %s" % ts(c["start_time"]))
    out.append("- elapsed: %s h" % (c["elapsed_hours"] if c["elapsed_hours"] is not None else "unknown"))
    out.append("- price: %s $/h" % (c["dph"] if c["dph"] is not None else "unknown"))
    out.append("- spent so far: %s" % ("$%.2f" % c["spent_usd"] if c["spent_usd"] is not None else "unknown"))
    a = r["artifacts"]
    out += ["", "## Artifacts", ""]
    out += ["- verified: %s" % p for p in a["verified_finals"]]
    out += ["- MISSING: %s (%s)" % (m["path"], m["reason"]) for m in a["missing_finals"]]
    out += ["- PROBLEM: %s: %s" % (p["path"], p["problem"]) for p in a["problems"]]
    out += ["- replaced on the instance during the pull, taken next run: %s" % p for p in a["changed_during_pull"]]
    out += ["", "![loss per step](loss.png)", ""]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Status report and loss curve for voltx.vastai.harvest (runs on the controller, with the Python running Ansible).

  report.py INPUT_JSON|-
INPUT_JSON (a file, or stdin for -) holds: dest, report_dir, probe (the instance's status and files), settle (the
harvest's result), stages ([{log, output, epochs}] in curriculum order), loss_pattern (a regular expression with a
named group ``loss``), log_dir, dph, start_time (epoch seconds or ISO 8601, may be empty), now (epoch seconds,
default: the current time), curriculum_job.
Writes <report_dir>/status.json, status.md and loss.png (drawn with matplotlib, Agg backend); prints
{"loss_changed": bool, "status": {...}}. loss_changed says whether the parsed loss series differ from the ones in the
previous status.json: the rest of the report is a snapshot (time, money) and is not a change. The money spent counts
the campaign's destroyed instances from dest/campaign.json, the ledger voltx.vastai.instance writes (its ledger_file).
"""
import datetime
import json
import math
import os
import re
import sys
import time

# The collection's one byte formatter, data_sync's: a sibling of this file (voltx.vastai.scripts).
from data_sync_remote import human  # noqa: E402  pylint: disable=import-error

# Step and epoch numbers on a loss line, in the same forms as the loss: "step=40", "step: 40", "Step 40", '"step": 40';
# "epoch 3/10" also gives the number of epochs.
STEP_RE = re.compile(r'(?i)\bstep"?\s*[:=]?\s*(?P<step>\d+)')
EPOCH_RE = re.compile(r'(?i)\bepoch"?\s*[:=]?\s*(?P<epoch>\d+)(?:\s*/\s*(?P<epochs>\d+))?')
# At most this many points per stage go into status.json and the plot (every n-th point, and always the last).
MAX_POINTS = 5000


def _group(match, name):
    try:
        value = match.group(name)
    except IndexError:
        return None
    return value


def parse_line(line, loss_re):
    """One loss point, or None: {"loss", "step", "epoch", "epochs"} (step/epoch/epochs None when not on the line)."""
    m = loss_re.search(line)
    if not m:
        return None
    try:
        loss = float(m.group("loss"))
    except (TypeError, ValueError):
        return None
    point = {"loss": loss, "step": None, "epoch": None, "epochs": None}
    for key, finder in (("step", STEP_RE), ("epoch", EPOCH_RE), ("epochs", EPOCH_RE)):
        value = _group(m, key)  # the user's pattern may capture them itself
        if value is None:
            found = finder.search(line)
            value = found.group(key) if found else None
        point[key] = int(value) if value is not None else None
    return point


def parse_log(text, loss_re):
    """Loss points of one stage log.

    Returns {"points": [...], "epoch_losses": {epoch: loss}, "last": point, "epochs": N or None, "lines": n}.
    A line with a step is a step point; a line with an epoch and no step is the epoch's summary (plotted as an epoch
    mark); a line with neither is a step point numbered by its index. A resumed run logs an epoch's steps again:
    the later line for the same (epoch, step) replaces the earlier one. When the log has no step lines at all, the
    epoch summaries are the series.
    """
    stepped, plain, summaries, last, epochs, lines = {}, [], {}, None, None, 0
    for line in text.splitlines():
        p = parse_line(line, loss_re)
        if p is None:
            continue
        lines += 1
        last = p
        epochs = p["epochs"] or epochs
        if p["step"] is not None:
            stepped[(p["epoch"] if p["epoch"] is not None else -1, p["step"])] = p
        elif p["epoch"] is not None:
            summaries[p["epoch"]] = p
        else:
            plain.append(p)
    if stepped:
        points = [stepped[k] for k in sorted(stepped)]
    elif plain:
        points = plain
    else:
        points = [summaries[e] for e in sorted(summaries)]
    return {"points": points, "epoch_losses": {e: summaries[e]["loss"] for e in sorted(summaries)}, "last": last,
            "epochs": epochs, "lines": lines}


def local_x(points):
    """x of each point inside its stage: the step when the steps only grow (a global step), else 1, 2, 3..."""
    steps = [p["step"] for p in points]
    if steps and None not in steps and all(p["epoch"] is None for p in points) and all(
            a < b for a, b in zip(steps, steps[1:])):
        return steps
    return list(range(1, len(points) + 1))


def thin(indices, limit=MAX_POINTS):
    if len(indices) <= limit:
        return indices
    stride = math.ceil(len(indices) / float(limit))
    kept = indices[::stride]
    return kept if kept[-1] == indices[-1] else kept + [indices[-1]]


def build_series(parsed_stages):
    """The plotted data, over all stages in order: [{stage, log, x, loss, step, epoch, epoch_ends}].

    x runs on across stages (a stage starts where the previous one ended); epoch_ends are the x of each epoch's
    last point and its summary loss, when the log has one.
    """
    series, offset = [], 0
    for n, name, parsed in parsed_stages:
        pts = parsed["points"]
        xs = [offset + x for x in local_x(pts)]
        epoch_ends = []
        for i, p in enumerate(pts):
            if p["epoch"] is not None and (i + 1 == len(pts) or pts[i + 1]["epoch"] != p["epoch"]):
                epoch_ends.append({"epoch": p["epoch"], "x": xs[i], "loss": parsed["epoch_losses"].get(p["epoch"])})
        keep = thin(list(range(len(pts))))
        series.append({"stage": n, "log": name, "start": offset,
                       "x": [xs[i] for i in keep], "loss": [pts[i]["loss"] for i in keep],
                       "step": [pts[i]["step"] for i in keep], "epoch": [pts[i]["epoch"] for i in keep],
                       "epoch_ends": epoch_ends, "loss_lines": parsed["lines"]})
        offset = xs[-1] if xs else offset
    return series


def build_figure(series, title_lines, empty_text=None):
    """The loss figure (matplotlib Figure, no pyplot state). Lines carry gids: stage-N (the loss), stage-boundary,
    epoch-mark; the money and ETA are the axes' title."""
    from matplotlib.figure import Figure  # pylint: disable=import-outside-toplevel

    fig = Figure(figsize=(10, 5.5), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    # Text built from data (money "$0.35", log names) is shown as written, never read as mathtext.
    ax.set_title("\n".join(title_lines), fontsize=10, parse_math=False)
    ax.set_xlabel("step (all stages, in order)")
    ax.set_ylabel("loss")
    ax.grid(True, alpha=0.3)
    # Losses as plain numbers on the axis (0.69314), not an offset and a scale in the corner (1e-5+6.931e-1).
    ax.ticklabel_format(axis="y", style="plain", useOffset=False)
    drawn = [s for s in series if s["x"]]
    if not drawn:
        ax.text(0.5, 0.5, empty_text or "no loss lines yet", transform=ax.transAxes, ha="center", va="center",
                fontsize=12, gid="empty-state", parse_math=False)
        return fig
    for s in drawn:
        ax.plot(s["x"], s["loss"], linewidth=1.2, label="stage %d (%s)" % (s["stage"], s["log"]),
                gid="stage-%d" % s["stage"])
    for s in drawn:
        if s["start"] > 0:
            ax.axvline(s["start"] + 0.5, color="black", linestyle="--", linewidth=1.0, gid="stage-boundary")
        ax.annotate("stage %d" % s["stage"], xy=(s["start"] + 0.5, 0.0), xycoords=("data", "axes fraction"),
                    xytext=(3, 4), textcoords="offset points", fontsize=8)
        for end in s["epoch_ends"]:
            ax.axvline(end["x"], color="grey", linestyle=":", linewidth=0.7, gid="epoch-mark")
        means = [(e["x"], e["loss"]) for e in s["epoch_ends"] if e["loss"] is not None]
        if means:
            ax.plot([m[0] for m in means], [m[1] for m in means], "o", markersize=4, color="black",
                    gid="epoch-loss-%d" % s["stage"], label="epoch mean loss" if s is drawn[0] else None)
    for text in ax.legend(loc="upper right", fontsize=8).get_texts():
        text.set_parse_math(False)
    return fig


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


def job_state(job):
    """How a job reads in the report: running / finished, exit status 0 / dead (exit N) / not running."""
    status = (job.get("marker") or {}).get("status")
    if job.get("alive"):
        return "running"
    if status == 0:
        return "finished, exit status 0"
    if status is not None:
        return "dead (exit %s)" % status
    return "not running (no exit status recorded)"


def read_marker(path):
    try:
        with open(path) as f:
            return json.load(f).get("status")
    except (OSError, ValueError, AttributeError):
        return None


def stage_states(stages, parsed, files, verified, job, markers):
    """Per stage: did it finish? Judged from its output file (valid on the instance or verified on the controller)
    and the exit status (the stage's own marker when there is one, else the curriculum job's)."""
    job_exit = (job.get("marker") or {}).get("status")
    alive = bool(job.get("alive"))
    started = [parsed[i] is not None and (parsed[i]["lines"] > 0 or parsed[i]["exists"]) for i in range(len(stages))]
    current = max([i for i, s in enumerate(started) if s] or [-1])
    out = []
    for i, st in enumerate(stages):
        entry = files.get(st["output"])
        if st["output"] in verified:
            output = "verified on the controller"
        elif entry is None:
            output = "not written yet"
        elif entry.get("valid"):
            output = "on the instance, not yet verified on the controller"
        else:
            output = "corrupt on the instance: %s" % entry.get("error", "")
        output_ok = output.startswith(("verified", "on the instance"))
        exit_status = markers[i]
        later = any(started[i + 1:]) or any(files.get(s["output"]) for s in stages[i + 1:])
        if output_ok and (exit_status == 0 or job_exit == 0 or later):
            state = "complete"
        elif alive and i == current:
            state = "running"
        elif exit_status not in (None, 0):
            state = "failed (exit %s)" % exit_status
        elif i == current and job_exit not in (None, 0):
            state = "failed (exit %s)" % job_exit
        elif started[i]:
            state = "stopped, output %s" % output if not output_ok else "stopped before its exit status was recorded"
        else:
            state = "not started"
        out.append({"stage": i + 1, "log": st["log"], "output": st["output"], "output_state": output,
                    "exit_status": exit_status, "state": state, "complete": state == "complete"})
    return out, current


def stage_fraction(stage_cfg, state, parsed):
    """How much of a stage is done, 0..1, or None when the log does not say how many epochs there are."""
    if state["complete"]:
        return 1.0
    if parsed is None or parsed["last"] is None:
        return 0.0
    epochs = parsed["epochs"] or stage_cfg.get("epochs")
    last = parsed["last"]
    if not epochs or last["epoch"] is None:
        return None
    if last["step"] is None:  # the epoch's summary: the epoch is done
        return min(1.0, last["epoch"] / float(epochs))
    prev = [p["step"] for p in parsed["points"] if p["epoch"] is not None and p["epoch"] < last["epoch"]]
    per_epoch = max(prev) if prev else None
    within = min(1.0, last["step"] / float(per_epoch)) if per_epoch else 0.0
    return min(1.0, (last["epoch"] - 1 + within) / float(epochs))


def estimate(fractions, elapsed_h, dph, now):
    """ETA over the whole curriculum at the average pace so far (stages weighed equally)."""
    if fractions and all(f == 1.0 for f in fractions):
        return {"done_fraction": 1.0, "remaining_hours": 0.0, "finish_time": None, "projected_total_usd": None,
                "text": "all stages complete"}
    if not fractions or None in fractions or elapsed_h is None or sum(fractions) <= 0:
        return {"done_fraction": None, "remaining_hours": None, "finish_time": None, "projected_total_usd": None,
                "text": "ETA unknown"}
    done = sum(fractions) / len(fractions)
    remaining = elapsed_h * (1 - done) / done
    total_usd = round(dph * (elapsed_h + remaining), 2) if dph is not None else None
    finish = now + remaining * 3600
    text = "ETA %s (%.1f h left, %.0f%% done)" % (ts(finish), remaining, 100 * done)
    if total_usd is not None:
        text += ", ~$%.2f in all" % total_usd
    return {"done_fraction": round(done, 4), "remaining_hours": round(remaining, 2), "finish_time": int(finish),
            "projected_total_usd": total_usd, "text": text}


def contract(end_date, eta):
    """The host's listing end (the rental stops there) against the ETA: a warning when it comes first."""
    end = parse_time(end_date)
    finish = eta["finish_time"]
    warning = None
    if end is not None and finish is not None and end < finish:
        warning = ("the host's contract ends %s, %.1f h before the ETA %s: the rental stops there. Harvest before "
                   "then and finish on another instance (ansible-playbook voltx.vastai.recover)" % (
                       ts(end), (finish - end) / 3600.0, ts(finish)))
    return {"end_date": end, "warning": warning}


def ts(v):
    if not v:
        return "unknown"
    try:
        return datetime.datetime.fromtimestamp(v, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    except (OverflowError, ValueError, OSError):
        # A pace that projects past what a date can hold (a curriculum of millennia) must not break the report.
        return "after 9999-12-31"


def money_line(cost):
    if cost["spent_usd"] is None:
        return "spent: unknown (no price or start time)"
    return "spent $%.2f in %.1f h at $%.3f/h" % (cost["spent_usd"], cost["elapsed_hours"], cost["dph"])


def build_report(cfg):
    """The report dict and the parsed stages, from the input document; reads the pulled logs under dest."""
    loss_re = re.compile(cfg["loss_pattern"])
    if "loss" not in loss_re.groupindex:
        raise ValueError("loss_pattern %r has no named group 'loss' ((?P<loss>...))" % cfg["loss_pattern"])
    status, settle = cfg["probe"]["status"], cfg["settle"]
    logs = os.path.join(cfg["dest"], cfg["log_dir"])
    stages = cfg["stages"]
    parsed, markers = [], []
    for st in stages:
        path = os.path.join(logs, st["log"])
        try:
            with open(path, errors="replace") as f:
                p = parse_log(f.read(), loss_re)
            p["exists"] = True
        except OSError:
            p = None
        parsed.append(p)
        markers.append(read_marker(os.path.splitext(path)[0] + ".exit"))
    jobs = status.get("jobs", {})
    files = {e["path"]: e for e in cfg["probe"].get("files", [])}
    verified = {f["path"] for f in settle.get("verified_finals", [])}
    states, cur_i = stage_states(stages, parsed, files, verified, jobs.get(cfg["curriculum_job"], {}), markers)

    now = float(cfg.get("now") or time.time())
    start = parse_time(cfg.get("start_time"))
    dph = float(cfg["dph"]) if cfg.get("dph") not in (None, "") else None
    elapsed_h = (now - start) / 3600.0 if start is not None else None
    earlier = earlier_instances(cfg["dest"])
    earlier_usd = round(sum(e["spent_usd"] for e in earlier), 4)
    spent = round(dph * elapsed_h + earlier_usd, 4) if dph is not None and elapsed_h is not None else None
    cost = {"dph": dph, "start_time": start, "elapsed_hours": round(elapsed_h, 4) if elapsed_h is not None else None,
            "spent_usd": spent, "earlier_instances": earlier, "earlier_usd": earlier_usd}
    eta = estimate([stage_fraction(st, s, p) for st, s, p in zip(stages, states, parsed)], elapsed_h, dph, now)
    host_contract = contract(cfg.get("end_date"), eta)

    series = build_series([(i + 1, st["log"], p) for i, (st, p) in enumerate(zip(stages, parsed)) if p is not None])
    current = None
    if cur_i >= 0:
        p = parsed[cur_i]
        last = p["last"] or {}
        current = {"stage": cur_i + 1, "of": len(stages), "log": stages[cur_i]["log"], "epoch": last.get("epoch"),
                   "epochs": p["epochs"] or stages[cur_i].get("epochs"), "step": last.get("step"),
                   "latest_loss": last.get("loss"), "state": states[cur_i]["state"],
                   "complete": states[cur_i]["complete"]}
    report = {
        "generated": int(now),
        "jobs": {k: {"alive": v.get("alive"), "exit_status": (v.get("marker") or {}).get("status"),
                     "state": job_state(v)} for k, v in jobs.items()},
        "session_alive": status.get("session_alive"),
        "stages": states,
        "curriculum_complete": bool(states) and all(s["complete"] for s in states),
        "current": current,
        "loss_lines": sum(s["loss_lines"] for s in series),
        "loss_pattern": cfg["loss_pattern"],
        "series": series,
        "epoch_losses": {st["log"]: {str(e): loss for e, loss in p["epoch_losses"].items()}
                         for st, p in zip(stages, parsed) if p is not None},
        "gpus": status.get("gpus"),
        "disk": status.get("disk"),
        "cost": cost,
        "eta": eta,
        "contract": host_contract,
        "artifacts": {"verified_finals": [f["path"] for f in settle.get("verified_finals", [])],
                      "missing_finals": settle.get("missing_finals", []), "problems": settle.get("problems", []),
                      "accepted_this_run": settle.get("accepted", []), "pruned_this_run": settle.get("pruned", []),
                      "changed_during_pull": settle.get("deferred", [])},
    }
    return report


def figure_for(report):
    """The loss figure of a report: its series, the money spent and the ETA in the title."""
    title = ["Loss per step, %d stage(s)" % len(report["stages"]),
             "%s; %s" % (money_line(report["cost"]), report["eta"]["text"])]
    empty = None
    if not report["loss_lines"]:
        empty = "no loss lines yet in %s" % (", ".join(s["log"] for s in report["stages"]) or "the logs")
    return build_figure(report["series"], title, empty)


def write_atomic(path, data, mode="w"):
    with open(path + ".tmp", mode) as f:
        f.write(data)
    os.replace(path + ".tmp", path)


LEDGER = "campaign.json"


def earlier_instances(dest):
    """The campaign's instances destroyed before this one (a recovery rents a new one, a failed burn-in another one),
    each with what it cost: its price for all the time it existed, so the disk a stopped instance kept billing is
    counted too."""
    try:
        with open(os.path.join(dest, LEDGER)) as f:
            rows = json.load(f).get("instances", [])
    except (OSError, ValueError):
        return []
    out = []
    for row in rows:
        start, end = parse_time(row.get("start_time")), parse_time(row.get("end_time"))
        hours = (end - start) / 3600.0 if start is not None and end is not None else 0.0
        out.append(dict(row, hours=round(hours, 4), spent_usd=round(float(row.get("dph") or 0) * hours, 4)))
    return out


def main(argv):
    os.umask(0o077)  # everything written here (report, plot) is the user's alone, from the start
    cfg = json.load(sys.stdin if argv[0] == "-" else open(argv[0]))
    report_dir = cfg["report_dir"]
    report = build_report(cfg)
    os.makedirs(report_dir, exist_ok=True)
    json_path = os.path.join(report_dir, "status.json")
    try:
        with open(json_path) as f:
            # compared as text: a NaN loss never equals itself
            previous = json.dumps(json.load(f).get("series"), sort_keys=True)
        loss_changed = previous != json.dumps(report["series"], sort_keys=True)
    except (OSError, ValueError):
        loss_changed = True
    png_path = os.path.join(report_dir, "loss.png")
    try:
        import matplotlib  # pylint: disable=import-outside-toplevel
        matplotlib.use("Agg")
    except ImportError:
        report["plot"] = "not drawn: matplotlib is not installed for %s (pip install -r requirements.txt)" % (
            sys.executable)
    else:
        fig = figure_for(report)
        fig.savefig(png_path + ".tmp.png", format="png")
        os.replace(png_path + ".tmp.png", png_path)
        report["plot"] = "loss.png"
    write_atomic(json_path, json.dumps(report, indent=1, sort_keys=True))
    write_atomic(os.path.join(report_dir, "status.md"), render_md(report))
    json.dump({"loss_changed": loss_changed, "status": report}, sys.stdout, sort_keys=True)
    return 0


def render_md(r):
    out = ["# Training status", "", "Generated %s." % ts(r["generated"]), "", "## Jobs", ""]
    out.append("- tmux session: %s" % ("alive" if r["session_alive"] else "not running"))
    for job, j in sorted(r["jobs"].items()):
        out.append("- %s: %s" % (job, j["state"]))
    out += ["", "## Stages", ""]
    for s in r["stages"]:
        out.append("- stage %d (%s): %s; %s %s" % (s["stage"], s["log"], s["state"], s["output"], s["output_state"]))
    cur = r["current"]
    out += ["", "## Progress", ""]
    if cur:
        out.append("- stage %s of %s (%s): %s" % (cur["stage"], cur["of"], cur["log"], cur["state"]))
        if cur["epoch"] is not None:
            step = ", step %s" % cur["step"] if cur["step"] is not None else ""
            out.append("- epoch %s of %s%s" % (cur["epoch"], cur["epochs"] or "?", step))
        out.append("- latest loss: %s" % (cur["latest_loss"] if cur["latest_loss"] is not None else "none yet"))
    else:
        out.append("- no stage log yet")
    if not r["loss_lines"]:
        out.append("- no loss line found in the stage logs (pattern: `%s`)" % r["loss_pattern"])
    else:
        out.append("- %d loss lines parsed" % r["loss_lines"])
    for name, losses in sorted(r["epoch_losses"].items()):
        out.append("- %s epoch losses: %s" % (name, ", ".join("%s: %s" % kv for kv in losses.items()) or "none yet"))
    out.append("- %s" % r["eta"]["text"])
    if r["contract"]["warning"]:
        out.append("- WARNING: %s" % r["contract"]["warning"])
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
            human(d["used_bytes"]), human(d["free_bytes"]), human(d["total_bytes"])))
    c = r["cost"]
    out += ["", "## Cost", ""]
    out.append("- started: %s" % ts(c["start_time"]))
    out.append("- host's contract ends: %s" % ts(r["contract"]["end_date"]))
    out.append("- elapsed: %s h" % (c["elapsed_hours"] if c["elapsed_hours"] is not None else "unknown"))
    out.append("- price: %s $/h" % (c["dph"] if c["dph"] is not None else "unknown"))
    out.append("- spent so far: %s" % ("$%.2f" % c["spent_usd"] if c["spent_usd"] is not None else "unknown"))
    if c.get("earlier_instances"):
        out.append("- of which earlier instances of the campaign: $%.2f (%s)" % (c["earlier_usd"], ", ".join(
            "%s: %.1f h at $%s/h" % (e["id"], e["hours"], e["dph"]) for e in c["earlier_instances"])))
    if r["eta"]["projected_total_usd"] is not None:
        out.append("- projected total: $%.2f" % r["eta"]["projected_total_usd"])
    a = r["artifacts"]
    out += ["", "## Artifacts", ""]
    out += ["- verified: %s" % p for p in a["verified_finals"]]
    out += ["- MISSING: %s (%s)" % (m["path"], m["reason"]) for m in a["missing_finals"]]
    out += ["- PROBLEM: %s: %s" % (p["path"], p["problem"]) for p in a["problems"]]
    out += ["- replaced on the instance during the pull, taken next run: %s" % p for p in a["changed_during_pull"]]
    out += [""]
    if r.get("plot") == "loss.png":
        out += ["![loss per step](loss.png)", ""]
    elif r.get("plot"):
        out += ["Loss plot %s." % r["plot"], ""]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""roles/scripts/files/report.py, the harvest's report: loss lines in each form, stage completion, job states, and
what the plot shows."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re

import matplotlib
import pytest
import yaml
from layout import campaign_defaults

matplotlib.use("Agg")

ROLES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "roles")
ROLE = os.path.join(ROLES, "harvest")
_spec = importlib.util.spec_from_file_location("harvest_report", os.path.join(ROLES, "scripts", "files", "report.py"))
report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(report)

with open(os.path.join(ROLE, "defaults", "main.yml")) as _f:
    DEFAULTS = yaml.safe_load(_f)
PATTERN = DEFAULTS["harvest_loss_pattern"]
LOSS_RE = re.compile(PATTERN)
STAGES = campaign_defaults()["campaign_stages"]
OUTPUTS = [s["output"] for s in STAGES]
HOUR = 3600.0
NOW = 1_700_000_000.0


def series_of(text):
    parsed = report.parse_log(text, LOSS_RE)
    s = report.build_series([(1, "x.log", parsed)])[0]
    return parsed, s


# --- the loss line forms ----------------------------------------------------------------------------------
@pytest.mark.parametrize("lines, losses", [
    (["loss=0.9", "loss=0.5", "loss=0.25"], [0.9, 0.5, 0.25]),
    (["loss: 0.9", "some chatter", "loss: 1e-3"], [0.9, 0.001]),
    (["Loss 0.9", "Loss 0.8"], [0.9, 0.8]),
    (['{"loss": 0.9}', '{"loss":0.7, "lr": 1e-4}'], [0.9, 0.7]),
])
def test_loss_forms_without_step_are_numbered_by_index(lines, losses):
    parsed, s = series_of("\n".join(lines))
    assert s["loss"] == losses
    assert s["x"] == list(range(1, len(losses) + 1))
    assert s["step"] == [None] * len(losses)
    assert parsed["lines"] == len(losses)


@pytest.mark.parametrize("lines", [
    ["step=40 loss=0.9", "step=80 loss=0.6", "step=120 loss=0.4"],
    ["step: 40 loss: 0.9", "step: 80 loss: 0.6", "step: 120 loss: 0.4"],
    ["Step 40 Loss 0.9", "Step 80 Loss 0.6", "Step 120 Loss 0.4"],
    ['{"step": 40, "loss": 0.9}', '{"step":80,"loss":0.6}', '{"loss": 0.4, "step": 120}'],
])
def test_a_growing_step_is_the_x(lines):
    _parsed, s = series_of("\n".join(lines))
    assert s["x"] == [40, 80, 120]
    assert s["step"] == [40, 80, 120]
    assert s["loss"] == [0.9, 0.6, 0.4]


def test_json_lines_with_epoch_and_step():
    text = "\n".join(json.dumps({"epoch": e, "step": st, "loss": round(1.0 / (e * 10 + st), 4)})
                     for e in (1, 2) for st in (40, 80))
    parsed, s = series_of(text)
    assert s["epoch"] == [1, 1, 2, 2]
    assert s["step"] == [40, 80, 40, 80]
    assert s["x"] == [1, 2, 3, 4]  # steps restart each epoch: the points run on in order
    assert s["loss"] == [round(1.0 / v, 4) for v in (50, 90, 60, 100)]
    assert [e["x"] for e in s["epoch_ends"]] == [2, 4]
    assert parsed["last"]["epoch"] == 2 and parsed["last"]["step"] == 80


FIXTURE_LOG = """=== STAGE 1 started 2024-01-01T00:00:00Z ===
[train-vfn] 40 samples, hidden_dim=16 num_blocks=2 params=17 epochs=2 batch_size=4 lr=5.0e-1 warmup=10 steps/epoch=2 device=cpu
epoch 1/2 step 1 loss=0.900000 lr=5.0e-2
epoch 1/2 step 2 loss=0.800000 lr=1.0e-1
epoch 1/2 done loss=0.850000
[train-vfn] saved checkpoint checkpoints/scaled_vfn_epoch_1.safetensors
epoch 2/2 step 1 loss=0.700000 lr=1.5e-1
epoch 2/2 step 2 loss=0.600000 lr=2.0e-1
epoch 2/2 done loss=0.650000
[train-vfn] training complete; saved checkpoints/scaled_vfn_stage1.safetensors
"""


def test_epoch_summaries_are_epoch_marks_not_steps():
    parsed, s = series_of(FIXTURE_LOG)
    assert s["loss"] == [0.9, 0.8, 0.7, 0.6]
    assert parsed["epoch_losses"] == {1: 0.85, 2: 0.65}
    assert parsed["epochs"] == 2
    assert s["epoch_ends"] == [{"epoch": 1, "x": 2, "loss": 0.85}, {"epoch": 2, "x": 4, "loss": 0.65}]
    assert parsed["lines"] == 6


def test_a_resumed_epoch_replaces_the_lines_of_the_died_run():
    text = "epoch 1/2 step 1 loss=0.9\nepoch 1/2 step 2 loss=0.8\nepoch 2/2 step 1 loss=5.0\n" \
           "resuming from epoch 1\nepoch 2/2 step 1 loss=0.7\nepoch 2/2 step 2 loss=0.6\n"
    _parsed, s = series_of(text)
    assert s["loss"] == [0.9, 0.8, 0.7, 0.6]


def test_a_custom_pattern_reads_its_own_form():
    parsed = report.parse_log("it 10 | train_loss 0.5 | val 0.9\nit 20 | train_loss 0.25\n",
                              re.compile(r"it (?P<step>\d+) \| train_loss (?P<loss>[0-9.]+)"))
    assert [(p["step"], p["loss"]) for p in parsed["points"]] == [(10, 0.5), (20, 0.25)]


def test_a_pattern_without_a_loss_group_is_refused(tmp_path):
    cfg = make_cfg(tmp_path, {}, loss_pattern=r"loss=([0-9.]+)")
    with pytest.raises(ValueError, match="named group 'loss'"):
        report.build_report(cfg)


# --- the whole report -------------------------------------------------------------------------------------
def make_cfg(tmp_path, logs, outputs=(), corrupt=(), verified=(), markers=None, job=None, **extra):
    """logs: {name: text} pulled to dest/logs; outputs valid on the instance; markers: {name.exit: status}."""
    dest = tmp_path / "dest"
    (dest / "logs").mkdir(parents=True, exist_ok=True)
    for name, text in logs.items():
        (dest / "logs" / name).write_text(text)
    for name, status in (markers or {}).items():
        (dest / "logs" / name).write_text(json.dumps({"status": status}))
    files = [{"path": p, "valid": True} for p in outputs]
    files += [{"path": p, "valid": False, "error": "truncated"} for p in corrupt]
    cfg = {
        "dest": str(dest), "report_dir": str(dest / "report"), "log_dir": "logs", "stages": STAGES,
        "loss_pattern": PATTERN, "curriculum_job": "phase21", "dph": "0.35", "start_time": NOW - 2 * HOUR, "now": NOW,
        "probe": {"files": files, "status": {
            "session_alive": True, "gpus": None, "disk": None,
            "jobs": {"phase21": job or {"alive": True, "marker": None},
                     "phase03": {"alive": False, "marker": {"status": 0}}}}},
        "settle": {"verified_finals": [{"path": p} for p in verified], "missing_finals": [], "problems": [],
                   "accepted": [], "pruned": [], "deferred": []},
    }
    cfg.update(extra)
    return cfg


def run_main(cfg, tmp_path, monkeypatch):
    path = tmp_path / "in.json"
    path.write_text(json.dumps(cfg))
    out = io.StringIO()
    monkeypatch.setattr(report.sys, "stdout", out)
    assert report.main([str(path)]) == 0
    return json.loads(out.getvalue())


def log(epochs, steps, start=1.0, total=2):
    lines, loss = [], start
    for e in range(1, epochs + 1):
        for st in range(1, steps + 1):
            lines.append("epoch %d/%d step %d loss=%.4f" % (e, total, st, loss))
            loss = round(loss * 0.9, 4)
        lines.append("epoch %d/%d done loss=%.4f" % (e, total, loss))
    return "\n".join(lines) + "\n"


def test_stage_two_running(tmp_path, monkeypatch):
    cfg = make_cfg(tmp_path, {"phase21_stage1.log": log(2, 3), "phase21_stage2.log": log(1, 3)},
                   outputs=[OUTPUTS[0]], verified=[OUTPUTS[0]], markers={"phase21_stage1.exit": 0})
    status = run_main(cfg, tmp_path, monkeypatch)["status"]
    assert [s["state"] for s in status["stages"]] == ["complete", "running", "not started"]
    assert status["stages"][0]["output_state"] == "verified on the controller"
    assert status["stages"][2]["output_state"] == "not written yet"
    assert status["current"]["stage"] == 2 and status["current"]["epoch"] == 1 and status["current"]["epochs"] == 2
    assert not status["curriculum_complete"]
    assert status["jobs"]["phase21"]["state"] == "running"
    assert status["jobs"]["phase03"]["state"] == "finished, exit status 0"
    assert status["cost"]["spent_usd"] == pytest.approx(0.70)
    # 1 of 3 stages, plus stage 2's epoch 1 of 2 done: half done after 2 h, so 2 h left, $1.40 in all.
    assert status["eta"]["done_fraction"] == pytest.approx(0.5)
    assert status["eta"]["remaining_hours"] == pytest.approx(2.0)
    assert status["eta"]["projected_total_usd"] == pytest.approx(1.40)
    md = (tmp_path / "dest" / "report" / "status.md").read_text()
    assert "- phase21: running" in md
    assert "- stage 1 (phase21_stage1.log): complete; checkpoints/scaled_vfn_stage1.safetensors verified" in md
    assert "- stage 3 (phase21_stage3.log): not started" in md
    assert "spent so far: $0.70" in md


@pytest.mark.parametrize("end_in_hours, warned", [(1.5, True), (3.0, False), (None, False)])
def test_a_host_contract_ending_before_the_eta_is_a_warning(tmp_path, monkeypatch, end_in_hours, warned):
    # Half done after 2 h: the ETA is 2 h from now.
    end_date = NOW + end_in_hours * HOUR if end_in_hours is not None else ""
    cfg = make_cfg(tmp_path, {"phase21_stage1.log": log(2, 3), "phase21_stage2.log": log(1, 3)},
                   outputs=[OUTPUTS[0]], verified=[OUTPUTS[0]], markers={"phase21_stage1.exit": 0}, end_date=end_date)
    status = run_main(cfg, tmp_path, monkeypatch)["status"]
    md = (tmp_path / "dest" / "report" / "status.md").read_text()
    if warned:
        assert status["contract"]["warning"].startswith("the host's contract ends %s, 0.5 h before the ETA %s" % (
            report.ts(end_date), report.ts(NOW + 2 * HOUR)))
        assert "- WARNING: the host's contract ends" in md and "ansible-playbook voltx.vastai.recover" in md
    else:
        assert status["contract"]["warning"] is None and "WARNING" not in md
    assert "- host's contract ends: %s" % report.ts(end_date or None) in md


def test_an_eta_beyond_the_calendar_is_still_a_report(tmp_path):
    """A pace that projects past year 9999 (a stage of 10^12 epochs) gives a report, with the contract warning."""
    logs = {"phase21_stage1.log": "epoch 1/1000000000000 step 3 loss=0.9\nepoch 2/1000000000000 step 1 loss=0.8\n"}
    cfg = make_cfg(tmp_path, logs, stages=[dict(STAGES[0], epochs=10 ** 12)], end_date=NOW + HOUR)
    r = report.build_report(cfg)
    assert r["eta"]["text"].startswith("ETA after 9999-12-31")
    assert r["contract"]["warning"].startswith("the host's contract ends %s" % report.ts(NOW + HOUR))


def test_an_output_file_without_a_successful_exit_is_not_complete(tmp_path):
    cfg = make_cfg(tmp_path, {"phase21_stage1.log": log(1, 3)}, outputs=[OUTPUTS[0]],
                   job={"alive": False, "marker": {"status": 1}})
    r = report.build_report(cfg)
    assert r["stages"][0]["state"] == "failed (exit 1)" and not r["stages"][0]["complete"]
    assert r["jobs"]["phase21"]["state"] == "dead (exit 1)"


def test_a_stage_marker_says_which_stage_failed(tmp_path):
    cfg = make_cfg(tmp_path, {"phase21_stage1.log": log(2, 2), "phase21_stage2.log": log(1, 2)},
                   outputs=[OUTPUTS[0]], markers={"phase21_stage1.exit": 0, "phase21_stage2.exit": 3},
                   job={"alive": False, "marker": {"status": 3}})
    r = report.build_report(cfg)
    assert [s["state"] for s in r["stages"]] == ["complete", "failed (exit 3)", "not started"]


def test_a_corrupt_output_is_not_complete_even_after_exit_0(tmp_path):
    logs = {"phase21_stage%d.log" % i: log(2, 2) for i in (1, 2, 3)}
    cfg = make_cfg(tmp_path, logs, outputs=OUTPUTS[:2], corrupt=[OUTPUTS[2]],
                   job={"alive": False, "marker": {"status": 0}})
    r = report.build_report(cfg)
    assert [s["complete"] for s in r["stages"]] == [True, True, False]
    assert r["stages"][2]["output_state"] == "corrupt on the instance: truncated"
    assert not r["curriculum_complete"]


def test_all_done(tmp_path):
    logs = {"phase21_stage%d.log" % i: log(2, 2) for i in (1, 2, 3)}
    cfg = make_cfg(tmp_path, logs, outputs=OUTPUTS, verified=OUTPUTS, job={"alive": False, "marker": {"status": 0}})
    r = report.build_report(cfg)
    assert r["curriculum_complete"] and r["current"]["stage"] == 3 and r["current"]["complete"]
    assert r["eta"]["text"] == "all stages complete"
    assert r["jobs"]["phase21"]["state"] == "finished, exit status 0"


def test_a_log_without_loss_lines_says_so(tmp_path, monkeypatch):
    cfg = make_cfg(tmp_path, {"phase21_stage1.log": "=== STAGE 1 started ===\n[train-vfn] loading data\n"})
    out = run_main(cfg, tmp_path, monkeypatch)
    status = out["status"]
    assert status["loss_lines"] == 0 and status["series"][0]["x"] == []
    assert status["current"]["latest_loss"] is None
    md = (tmp_path / "dest" / "report" / "status.md").read_text()
    assert "no loss line found in the stage logs" in md
    fig = report.figure_for(status)
    ax = fig.axes[0]
    assert len(ax.lines) == 0
    assert [t.get_text() for t in ax.texts] == ["no loss lines yet in phase21_stage1.log, phase21_stage2.log, "
                                                "phase21_stage3.log"]
    assert (tmp_path / "dest" / "report" / "loss.png").stat().st_size > 0


def test_no_logs_at_all(tmp_path):
    r = report.build_report(make_cfg(tmp_path, {}))
    assert r["current"] is None and r["loss_lines"] == 0 and r["series"] == []
    assert [s["state"] for s in r["stages"]] == ["not started"] * 3


# --- the plot shows the report's data ---------------------------------------------------------------------
def lines_by_gid(ax, gid):
    return [ln for ln in ax.lines if ln.get_gid() == gid]


def test_the_plot_draws_the_series_of_status_json(tmp_path, monkeypatch):
    logs = {"phase21_stage1.log": log(2, 3), "phase21_stage2.log": log(2, 3, start=0.5),
            "phase21_stage3.log": log(1, 3, start=0.3)}
    cfg = make_cfg(tmp_path, logs, outputs=OUTPUTS[:2], verified=OUTPUTS[:2])
    out = run_main(cfg, tmp_path, monkeypatch)
    on_disk = json.loads((tmp_path / "dest" / "report" / "status.json").read_text())
    assert on_disk["series"] == out["status"]["series"]
    assert on_disk["loss_lines"] == 6 + 2 + 6 + 2 + 3 + 1  # step lines and epoch lines of the three logs

    ax = report.figure_for(on_disk).axes[0]
    for n, s in enumerate(on_disk["series"], 1):
        (line,) = lines_by_gid(ax, "stage-%d" % n)
        assert line.get_xydata().tolist() == [[x, y] for x, y in zip(s["x"], s["loss"])]
    # the three stages follow each other: 6 steps, 6 steps, 3 steps
    assert [lines_by_gid(ax, "stage-%d" % n)[0].get_xdata().tolist() for n in (1, 2, 3)] == [
        [1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12], [13, 14, 15]]
    assert lines_by_gid(ax, "stage-1")[0].get_ydata().tolist()[:2] == [1.0, 0.9]
    assert [ln.get_xdata()[0] for ln in lines_by_gid(ax, "stage-boundary")] == [6.5, 12.5]
    assert [ln.get_xdata()[0] for ln in lines_by_gid(ax, "epoch-mark")] == [3, 6, 9, 12, 15]
    (means,) = lines_by_gid(ax, "epoch-loss-1")
    assert means.get_xydata().tolist() == [[3, on_disk["epoch_losses"]["phase21_stage1.log"]["1"]],
                                           [6, on_disk["epoch_losses"]["phase21_stage1.log"]["2"]]]
    title = ax.get_title()
    assert "spent $0.70 in 2.0 h at $0.350/h" in title
    assert on_disk["eta"]["text"] in title and "ETA" in on_disk["eta"]["text"]


def test_unchanged_logs_are_not_a_change(tmp_path, monkeypatch):
    cfg = make_cfg(tmp_path, {"phase21_stage1.log": log(1, 2)})
    assert run_main(cfg, tmp_path, monkeypatch)["loss_changed"]
    cfg["now"] = NOW + 600  # money and time move on, the loss does not
    assert not run_main(cfg, tmp_path, monkeypatch)["loss_changed"]
    with open(tmp_path / "dest" / "logs" / "phase21_stage1.log", "a") as f:
        f.write("epoch 2/2 step 1 loss=0.1\n")
    assert run_main(cfg, tmp_path, monkeypatch)["loss_changed"]


def test_argument_specs_document_the_defaults_report_py_is_tested_with():
    with open(os.path.join(ROLE, "meta", "argument_specs.yml")) as f:
        specs = yaml.safe_load(f)["argument_specs"]
    assert "harvest_loss_pattern" in specs["main"]["options"]
    for entry in specs.values():
        options = entry["options"]
        assert options.get("harvest_loss_pattern", {"default": PATTERN})["default"] == PATTERN


def test_earlier_instances_of_the_campaign_count_in_the_money_spent(tmp_path, monkeypatch):
    """The ledger (written by voltx.vastai.instance's ledger_file) adds a destroyed instance's price x lifetime."""
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "campaign.json").write_text(json.dumps({"instances": [
        {"id": 7, "label": "volt-x-training", "dph": 0.2, "start_time": NOW - 10 * HOUR, "end_time": NOW - 7 * HOUR}]}))
    cfg = make_cfg(tmp_path, {"phase21_stage1.log": log(1, 2)})
    status = run_main(cfg, tmp_path, monkeypatch)["status"]
    (earlier,) = status["cost"]["earlier_instances"]
    assert (earlier["id"], earlier["hours"], earlier["spent_usd"]) == (7, 3.0, 0.6)
    assert status["cost"]["spent_usd"] == pytest.approx(0.70 + 0.6)
    assert "- of which earlier instances of the campaign: $0.60 (7: 3.0 h at $0.2/h)" in (
        dest / "report" / "status.md").read_text()
    assert report.earlier_instances(str(tmp_path / "nothing-yet")) == []


def test_the_plot_shows_dollars_and_losses_as_written(tmp_path):
    """A title with two "$" amounts is not mathtext (it read "spent 0.01in0.1hat0.169/h"), and losses that differ in
    the fifth decimal are read off the axis, not off an offset in its corner ("1e-5+6.931e-1")."""
    losses = [0.693147, 0.693145, 0.693142, 0.693140]
    series = [{"stage": 1, "log": "run_$1.log", "start": 0, "x": [1, 2, 3, 4], "loss": losses,
               "epoch_ends": []}]
    title = "spent $0.01 in 0.1 h at $0.169/h; ETA unknown"
    fig = report.build_figure(series, ["Loss per step, 1 stage(s)", title])
    svg = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # the SVG then holds each text as it is drawn
        fig.savefig(svg, format="svg")
    drawn = re.findall(r"<text[^>]*>([^<]*)</text>", svg.getvalue())
    assert title in drawn and "stage 1 (run_$1.log)" in drawn
    ax = fig.axes[0]
    assert ax.yaxis.get_offset_text().get_text() == ""
    ticks = [float(t.get_text().replace("\u2212", "-")) for t in ax.get_yticklabels() if t.get_text()]
    assert len(ticks) >= 3 and all(0.69 < t < 0.70 for t in ticks)
    assert len(set(ticks)) == len(ticks), "each tick shows a value of its own"

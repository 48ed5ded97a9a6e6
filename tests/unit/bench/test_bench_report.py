"""make bench's arithmetic and tables: what a reader of docs/performance.md relies on."""

import argparse

import bench
import pytest
import report


def test_summary_is_the_median_and_the_spread_and_skips_missing_runs():
    assert report.summary([30.0, 10.0, 20.0, None]) == {"median": 20.0, "spread": 20.0, "n": 3}
    assert report.summary([4.0, 2.0])["median"] == 3.0
    assert report.summary([None]) is None
    assert report.summary([]) is None


def test_floor_is_the_longer_of_upload_and_build_alone():
    assert report.floor_seconds(12.5, 30.0) == 30.0
    assert report.floor_seconds(45.0, 30.0) == 45.0


def test_ratio_is_none_without_a_measurement():
    assert report.ratio(30.0, 60.0) == 0.5
    assert report.ratio(None, 60.0) is None
    assert report.ratio(30.0, 0) is None


def test_phase_medians_are_ordered_by_when_they_end():
    timelines = [{"build": 40.0, "scp a": 5.0}, {"build": 50.0, "scp a": 7.0, "ready": 60.0}, {"build": 44.0}]
    assert list(report.phase_medians(timelines).items()) == [("scp a", 6.0), ("build", 44.0), ("ready", 60.0)]


def results():
    return {("small", 50): {"bytes": {"gz": 20_000_000, "ours": 18_000_000}, "floor": [40.0, 42.0, 41.0],
                            "upload": [40.0, 42.0, 41.0], "build_alone": 20.5,
                            "guide": [50.0, 52.0, 54.0], "ours": [45.0, 47.0, 46.0],
                            "phases": {"guide": [{"ready": 52.0}], "ours": [{"data_sync": 3.0, "ready": 46.0}]}},
            ("small", 200): {"bytes": {"gz": 20_000_000, "ours": 18_000_000}, "floor": [30.0],
                             "guide": [40.0], "ours": [], "phases": {}}}


def test_rows_put_the_faster_rate_first_and_divide_the_medians():
    rows = report.cell_rows(results())
    assert [(row["scale"], row["rate"]) for row in rows] == [("small", 200), ("small", 50)]
    slow = rows[1]
    assert slow["ours_floor"] == pytest.approx(46.0 / 41.0)
    assert slow["ours_guide"] == pytest.approx(46.0 / 52.0)
    assert rows[0]["ours_guide"] is None  # ours never finished at 200: no ratio rather than a made-up one
    assert slow["upload_build"] == pytest.approx(2.0) and rows[0]["upload_build"] is None


def test_table_prints_ratios_bytes_and_a_dash_for_what_was_not_measured():
    table = report.render_table(report.cell_rows(results()))
    lines = table.splitlines()
    assert lines[0].startswith("| scale | rate |")
    assert "| small | 200 Mbit/s | 20.0 MB / 18.0 MB | - | 30.0 ±0.0 | 40.0 ±0.0 | - | - | - |" in lines
    assert "| small | 50 Mbit/s | 20.0 MB / 18.0 MB | 2.00 | 41.0 ±1.0 | 52.0 ±2.0 | 46.0 ±1.0 | 1.12 | 0.88 |" in lines


def test_phases_and_control_plane_tables():
    phases = report.render_phases(report.cell_rows(results()))
    assert "| small | 50 Mbit/s | ours | data_sync 3.0, ready 46.0 |" in phases
    assert "| small | 200 Mbit/s | ours | - |" in phases
    control = report.render_control_plane({"per_task": {"shipped ansible.cfg": 0.21}, "tasks": 96, "rerun": 14.26})
    assert "| seconds per trivial task, shipped ansible.cfg | 0.210 |" in control
    assert "| no-change re-run of the prepare step, s | 14.3 |" in control
    assert "| module runs over SSH in the prepare step (loop items counted; one round trip each with pipelining) | - |" in control


def test_targets_say_which_hold_and_which_no_row_measured():
    rows = report.cell_rows(results())
    rows[1]["phases"]["ours"]["first byte"] = 3.4
    control = {"per_task": {"shipped ansible.cfg": 0.12}, "rerun": 11.6}
    targets = {target: (measured, held) for target, measured, held in report.target_rows(rows, control)}
    # small @50 has upload/build 2.0, the guide's proportions; small @200 has no upload measured.
    assert targets["ours/guide <= 0.60 at 200 Mbit/s, guide's proportions"] == (
        "no row: upload/build at 200 Mbit/s is - (small)", "not measured")
    assert targets["ours/guide <= 1.0 at every rate and scale"] == ("worst small @50 0.88", "yes")
    assert targets["ours/floor <= 1.10 at the guide's proportions"] == ("small @50 1.12", "no")
    assert targets["first byte on the wire <= 3 s after t0"] == ("3.4 s (median over the rows)", "no")
    assert targets["no-change re-run < 10 s"] == ("11.6 s", "no")
    assert targets["<= 0.15 s per task (shipped ansible.cfg)"] == ("0.120 s", "yes")
    table = report.render_targets(rows, control)
    assert "| ours/floor <= 1.10 at the guide's proportions | small @50 1.12 | no |" in table.splitlines()


def test_human_bytes():
    assert report.human_bytes(512) == "512 B"
    assert report.human_bytes(1_500_000) == "1.5 MB"
    assert report.human_bytes(2_000_000_000_000) == "2000.0 GB"


def test_scales_and_rates_arguments():
    assert bench.parse_scales("small=40, guide=160.5") == [("small", 40.0), ("guide", 160.5)]
    assert bench.parse_rates("200,50") == [200, 50]
    for bad in ("small", "=3", "small="):
        with pytest.raises(argparse.ArgumentTypeError, match="NAME=SCALE"):
            bench.parse_scales(bad)
    with pytest.raises(argparse.ArgumentTypeError, match="positive"):
        bench.parse_rates("200,0")


def test_role_phases_split_a_role_that_comes_back():
    records = [{"role": "campaign", "t": 101.0}, {"role": "data_sync", "t": 103.0}, {"role": "data_sync", "t": 104.0},
               {"role": "rust_toolchain", "t": 130.0}, {"role": "data_sync", "t": 140.0}, {"role": "", "t": 141.0}]
    assert bench.role_phases(records, 100.0) == {"campaign": 1.0, "data_sync": 4.0, "rust_toolchain": 30.0,
                                                 "data_sync#2": 40.0, "play": 41.0}


def test_remote_work_leaves_out_skipped_and_controller_side_results():
    records = [{"status": "ok"}, {"status": "skipped"}, {"status": "changed", "delegated": True}, {"status": "item"}]
    assert bench.remote_work(records) == [{"status": "ok"}, {"status": "item"}]


def test_milestones_give_each_step_of_ours_its_own_duration():
    phases = {"campaign": 0.4, "data_sync": 0.5, "campaign#2": 0.6, "first byte": 1.2, "data_sync#2": 1.5,
              "campaign#3": 8.0, "data_sync#3": 10.0, "campaign#4": 10.5, "build#2": 13.0, "campaign#6": 17.0,
              "rust_toolchain#2": 18.0, "build#5": 22.0, "data_sync#4": 30.0, "build#6": 27.0, "ready": 30.5}
    steps = bench.milestones(phases)
    assert steps[0] == ("first byte on the wire", 1.2, 1.2)
    assert steps[1] == ("uploads launched", 1.5, pytest.approx(0.3))
    assert steps[2] == ("python3, the unpacking tools and rsync installed", 8.0, pytest.approx(6.5))
    assert steps[4] == ("source pushed (the toolchain still installing)", 13.0, pytest.approx(3.0))
    assert steps[-1] == ("ready", 30.5, pytest.approx(0.5))
    assert [end for _meaning, end, _seconds in steps] == [1.2, 1.5, 8.0, 10.0, 13.0, 17.0, 18.0, 22.0, 27.0, 30.0,
                                                          30.5], "campaign#4 is a variable check, not a milestone"

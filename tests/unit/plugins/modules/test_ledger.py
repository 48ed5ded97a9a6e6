"""The campaign's ledger: instance state=absent with ledger_file counts each destroyed instance once."""

from __future__ import annotations

import json
import stat

from test_instance_module import run


def test_a_destroy_counts_the_instance_in_the_ledger_once(vast, clock, tmp_path):
    ledger = tmp_path / "harvest" / "campaign.json"
    vast.contract_price[11] = 0.2
    vast._new_instance(11, {"label": "voltx-train"})
    clock.now += 3600
    kind, result, _m = run(vast, clock, dict(label="voltx-train", state="absent", ledger_file=str(ledger)))
    assert kind == "ok" and result["destroyed"] == [501]
    (row,) = json.loads(ledger.read_text())["instances"]
    assert row == {"id": 501, "label": "voltx-train", "dph": 0.2, "start_time": 1.0, "end_time": clock.now}
    assert stat.S_IMODE(ledger.stat().st_mode) == 0o600
    vast._new_instance(12, {"label": "voltx-train"})
    run(vast, clock, dict(label="voltx-train", state="absent", ledger_file=str(ledger)))
    assert [r["id"] for r in json.loads(ledger.read_text())["instances"]] == [501, 502]


def test_check_mode_and_a_missing_instance_write_no_ledger(vast, clock, tmp_path):
    ledger = tmp_path / "campaign.json"
    kind, result, _m = run(vast, clock, dict(label="voltx-train", state="absent", ledger_file=str(ledger)))
    assert kind == "ok" and result["destroyed"] == [] and not ledger.exists()
    vast._new_instance(11, {"label": "voltx-train"})
    run(vast, clock, dict(label="voltx-train", state="absent", ledger_file=str(ledger)), check_mode=True)
    assert not ledger.exists()


def test_a_ledger_only_goes_with_a_destroy(vast, clock, tmp_path):
    kind, result, _m = run(vast, clock, dict(label="voltx-train", state="running", ledger_file=str(tmp_path / "l")))
    assert kind == "failed" and "ledger_file" in result["msg"] and vast.calls == []

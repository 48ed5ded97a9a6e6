"""The line each upload prints once it ended: how it was sent, or that this run sent nothing itself."""

import os

import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from conftest import ROOT

WAIT = os.path.join(ROOT, "roles", "data_sync", "tasks", "wait.yml")


def sent_line(stats):
    (task,) = [t for t in yaml.safe_load(open(WAIT)) if t["name"] == "Show what each upload sent"]
    templar = Templar(loader=DataLoader(), variables={"item": {"key": "data.tar.zst", "value": stats}})
    return " ".join(templar.template(trust_as_template(task["ansible.builtin.debug"]["msg"])).split())


def test_a_sent_upload_names_its_method():
    line = sent_line({"sent": 10, "size": 10, "methods": ["raw"], "seconds": 2, "attempts": 1, "ok": True})
    assert line == "data.tar.zst: sent 10 of 10 bytes by raw in 2 s (1 attempt(s))"


def test_an_adopted_upload_says_this_run_sent_nothing_instead_of_an_empty_method():
    line = sent_line({"sent": 0, "size": 1234, "methods": [], "seconds": 0, "attempts": 0, "ok": True,
                      "msg": "the upload already running for it finished: done"})
    assert " by  " not in line
    assert line == "data.tar.zst: nothing sent by this run: the upload already running for it finished: done"

"""The inventory plugin over real HTTP, and Ansible reaching a rented container over real SSH through it."""

import os
import subprocess
import textwrap

from conftest import ROOT, VENV_BIN
from test_instance_lifecycle import LABEL, rent_task


def plain(value):
    """ansible-inventory --list writes untrusted (API) strings as {"__ansible_unsafe": ...}."""
    return value["__ansible_unsafe"] if isinstance(value, dict) and "__ansible_unsafe" in value else value


def write_inventory(tmp_path, body=""):
    path = tmp_path / "test.vastai.yml"
    path.write_text("plugin: voltx.vastai.vastai\n" + textwrap.dedent(body))
    return path


def test_rented_instance_is_a_host_that_answers_ping(ansible, emulator, tmp_path, ssh_keypair):
    runner, results = ansible.playbook([rent_task(ssh_public_key=ssh_keypair[1])])
    assert runner.status == "successful", runner.stdout.read()
    rented = results["Rent"]["instance"]

    inventory_file = write_inventory(tmp_path, """
        keyed_groups:
          - key: vastai_gpu_name
            prefix: gpu
        compose:
          price_per_day: vastai_dph_total * 24
    """)
    inventory, err = ansible.inventory(inventory_file)
    assert LABEL in inventory["_meta"]["hostvars"], err
    hostvars = inventory["_meta"]["hostvars"][LABEL]
    # API data is never templated: the label and the SSH host come back marked unsafe.
    assert hostvars["vastai_label"] == {"__ansible_unsafe": LABEL}
    assert (plain(hostvars["ansible_host"]), hostvars["ansible_port"]) == (rented["ssh_host"], rented["ssh_port"])
    assert plain(hostvars["ansible_user"]) == "root"
    assert hostvars["vastai_id"] == rented["id"]
    assert plain(hostvars["vastai_gpu_name"]) == "RTX 5090"
    assert abs(hostvars["price_per_day"] - rented["dph_total"] * 24) < 1e-9
    assert LABEL in inventory["gpu_RTX_5090"]["hosts"]

    # The rented host is as bare as the CUDA image: no python3 until the collection bootstraps it with raw.
    bare = ansible.adhoc(inventory_file, LABEL, "ansible.builtin.raw", "command -v python3")
    assert bare.status == "failed", bare.stdout.read()
    for expect_changed in (True, False):
        bootstrap = ansible.adhoc(inventory_file, LABEL, "ansible.builtin.include_role", "name=voltx.vastai.campaign")
        assert bootstrap.status == "successful", bootstrap.stdout.read()
        results = [e["event_data"] for e in bootstrap.events if e["event"] == "runner_on_ok"
                   and e["event_data"].get("task_action") == "ansible.builtin.raw"]
        assert [r["res"]["changed"] for r in results] == [expect_changed]

    ping = ansible.adhoc(inventory_file, LABEL, "ansible.builtin.ping")
    assert ping.status == "successful", ping.stdout.read()
    pongs = [e["event_data"]["res"] for e in ping.events if e["event"] == "runner_on_ok"]
    assert pongs and pongs[0]["ping"] == "pong"


def test_status_and_label_filters(ansible, emulator, tmp_path):
    runner = ansible.playbook([rent_task(), rent_task(name="Second", label="other-job")])[0]
    assert runner.status == "successful", runner.stdout.read()
    runner = ansible.playbook([{"name": "Stop", "voltx.vastai.instance": {"label": "other-job", "state": "stopped"}}])[0]
    assert runner.status == "successful", runner.stdout.read()

    running_only = ansible.inventory(write_inventory(tmp_path, "statuses: [running]\n"))[0]
    assert set(running_only["_meta"]["hostvars"]) == {LABEL}

    by_label = ansible.inventory(write_inventory(tmp_path, "statuses: []\nlabels: ['other-*']\n"))[0]
    assert set(by_label["_meta"]["hostvars"]) == {"other-job"}

    # By default every instance is listed, the stopped one too, with its status as a variable and a group.
    every = ansible.inventory(write_inventory(tmp_path))[0]
    assert set(every["_meta"]["hostvars"]) == {LABEL, "other-job"}
    stopped = plain(every["_meta"]["hostvars"]["other-job"]["vastai_status"])
    assert stopped in ("exited", "stopped")
    assert every["vastai_" + stopped]["hosts"] == ["other-job"]
    assert every["vastai_running"]["hosts"] == [LABEL]


def test_a_missing_api_key_is_said_once_in_one_line_that_says_where_it_goes(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ, HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), ANSIBLE_NOCOLOR="1",
               PATH=VENV_BIN + os.pathsep + os.environ["PATH"], ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".build"))
    env.pop("VAST_API_KEY", None)
    run = subprocess.run(["ansible-playbook", "playbooks/harvest.yml"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300, check=False)
    assert run.returncode != 0, "a playbook that works on the instance must fail when the inventory is empty"
    output = (run.stderr + run.stdout).strip()
    (line,) = [line for line in output.splitlines() if "No Vast.ai API key" in line]
    assert line.startswith("[WARNING]: Vast.ai inventory: No Vast.ai API key found")
    assert "VAST_API_KEY" in line and str(home / ".config" / "vastai" / "vast_api_key") in line
    assert output.count("No Vast.ai API key") == 1 and "Failed to parse" not in output

"""The README's sandbox: `make emulator` starts the emulator in the background for inventories/emulator, a user rents
through that inventory with the real playbooks, and `make emulator-stop` stops it and removes its containers.

The other playbook lines of the README's sandbox block (site.yml, harvest, teardown through inventories/emulator) are
make demo's steps, which test_site.py runs through the same inventory.
"""

import json
import os
import stat
import subprocess

from conftest import ROOT, VENV_BIN
from test_instance_lifecycle import guide_matches
from vast_emulator.containers import state_dir_hash


def run(argv, env, timeout=600):
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, "%s failed:\n%s%s" % (" ".join(argv), proc.stdout[-4000:], proc.stderr[-3000:])
    return proc.stdout


def containers(directory):
    listed = subprocess.run(["docker", "ps", "-aq", "--filter", "label=voltx.emulator=%s" % state_dir_hash(directory)],
                            capture_output=True, text=True, check=True)
    return listed.stdout.split()


def test_make_emulator_serves_the_emulator_inventory_and_emulator_stop_removes_its_containers(tmp_path, test_image):
    directory = str(tmp_path / "sandbox")
    # The user's real blocklist happens to list every machine id the emulator's matching offers use: the sandbox
    # keeps a blocklist of its own, so the rent still finds an offer and the real file is left as it was.
    real_blocklist = tmp_path / "real-blocklist.json"
    real_blocklist.write_text(json.dumps({"machines": [
        {"machine_id": offer["machine_id"], "reason": "burn-in: a real host", "date": "2026-12-01T00:00:00Z"}
        for offer in guide_matches()]}))
    before = real_blocklist.read_text()
    env = dict(os.environ, VOLTX_EMULATOR_DIR=directory, VOLTX_TEST_IMAGE=test_image, ANSIBLE_NOCOLOR="1",
               PATH=VENV_BIN + os.pathsep + os.environ["PATH"], VOLTX_VASTAI_BLOCKLIST=str(real_blocklist))
    for name in ("VAST_API_KEY", "VAST_API_URL", "VOLTX_VASTAI_KNOWN_HOSTS_DIR", "ANSIBLE_PRIVATE_KEY_FILE"):
        env.pop(name, None)  # the emulator's are given below, as make emulator says

    started = run(["make", "--no-print-directory", "emulator"], env)
    try:
        assert "ansible-playbook -i inventories/emulator site.yml" in started
        ready = os.path.join(directory, "emulator.json")
        assert stat.S_IMODE(os.stat(ready).st_mode) == 0o600  # it holds the emulator's API key
        with open(ready) as handle:
            api_key = json.load(handle)["api_key"]
        # Its key is exported as a real one is (the modules read it there, never from an option).
        key_file = os.path.join(directory, "controller", "vast_api_key")
        assert "export VAST_API_KEY=$(cat %s)" % os.path.relpath(key_file, ROOT) in started
        with open(key_file) as handle:
            env["VAST_API_KEY"] = handle.read().strip()

        rented = run([os.path.join(VENV_BIN, "ansible-playbook"), "-i", "inventories/emulator", "playbooks/rent.yml"],
                     env)
        assert api_key not in rented
        # A fresh host is burnt in with what the emulator's containers have: the link to the controller.
        assert "passed the burn-in (throughput). Throughput with the controller:" in " ".join(rented.split())
        assert real_blocklist.read_text() == before
        inventory = json.loads(run([os.path.join(VENV_BIN, "ansible-inventory"), "-i", "inventories/emulator",
                                    "--list"], env))
        assert inventory["training"]["hosts"] == ["volt-x-training"]
        assert len(containers(directory)) == 1
    finally:
        stopped = subprocess.run(["make", "--no-print-directory", "emulator-stop"], cwd=ROOT, env=env,
                                 capture_output=True, text=True, timeout=300, check=False)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert containers(directory) == []
    assert not os.path.exists(os.path.join(directory, "emulator.json"))

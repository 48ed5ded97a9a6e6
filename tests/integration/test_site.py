"""The guide end to end on the emulator: `ansible-playbook site.yml` as a user runs it, then harvest and teardown.

Real SSH into the rented container, a real cargo build of the fixture workspace, real uploads, real tmux jobs.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time

from ansible_collections.voltx.vastai.plugins.module_utils._endpoint import ssh_endpoint
from conftest import ROOT, VENV_BIN

LABEL = "volt-x-training"  # inventories/group_vars/all.yml and the inventory's `training` group


def recap(output):
    """{host: {"ok": n, "changed": n, "failed": n, ...}} from every PLAY RECAP in the output."""
    totals = {}
    for host, fields in re.findall(r"^(\S+)\s+: (ok=.*)$", output, flags=re.MULTILINE):
        counts = totals.setdefault(host, {})
        for name, value in re.findall(r"(\w+)=(\d+)", fields):
            counts[name] = counts.get(name, 0) + int(value)
    return totals


def ssh(instance, private_key, known_hosts_dir, command):
    """A command on the instance, at the endpoint the inventory gives Ansible, over the host key it pinned."""
    host, port, _kind = ssh_endpoint(instance)
    return subprocess.run(
        ["ssh", "-i", private_key, "-p", str(port), "-o", "StrictHostKeyChecking=yes",
         "-o", "UserKnownHostsFile=%s" % os.path.join(known_hosts_dir, str(instance["id"])),
         "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "root@%s" % host, command],
        capture_output=True, text=True, timeout=60, check=False)


def wait_for_jobs(emulator, instance_id, private_key, known_hosts_dir, attempts=90):
    """Both jobs leave a completion marker when they end; the fixture's tiny training takes seconds."""
    (row,) = [i for i in emulator.state()["instances"] if i["id"] == instance_id]
    for _attempt in range(attempts):
        markers = ssh(row, private_key, known_hosts_dir, "cat volt-x/logs/phase03.exit volt-x/logs/phase21.exit")
        if markers.returncode == 0:
            return
        time.sleep(2)
    raise AssertionError("the training jobs did not finish: %s" % markers.stderr)


class Site:
    def __init__(self, tmp_path, emulator, ssh_keypair, **overrides):
        self.tmp = tmp_path
        self.log = tmp_path / "ansible.log"
        private_key, _public = ssh_keypair
        self.env = dict(os.environ, PATH=VENV_BIN + os.pathsep + os.environ["PATH"],
                        ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".build"), ANSIBLE_PRIVATE_KEY_FILE=private_key,
                        ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
                        VAST_API_URL=emulator.url, VAST_API_KEY=emulator.api_key,
                        VOLTX_VASTAI_KNOWN_HOSTS_DIR=str(tmp_path / "known_hosts"),
                        VOLTX_VASTAI_BLOCKLIST=str(tmp_path / "blocklist.json"))
        self.source = tmp_path / "volt-x"
        shutil.copytree(os.path.join(ROOT, "tests", "fixtures", "volt-x"), self.source,
                        ignore=shutil.ignore_patterns("target"))
        local = tmp_path / "local"
        subprocess.run([sys.executable, os.path.join(ROOT, "tests", "fixtures", "generate_data.py"), str(local)],
                       check=True, capture_output=True)
        self.harvest = tmp_path / "harvest"
        settings = {
            "vastai_ssh_public_key_file": private_key + ".pub",
            "vastai_loading_timeout": 60, "vastai_wait_timeout": 180,
            # The emulator's hosts have no GPU and not the offers' cores, RAM and disk (tests/integration/test_fleet.py
            # burns hosts in with the checks they can pass).
            "campaign_burn_in": False,
            "data_sync_local_checkpoints_dir": str(local / "Volt_X" / "checkpoints"),
            "data_sync_local_data_root": str(local / "VoltData"),
            "data_sync_staging_dir": str(tmp_path / "staging"),
            "data_sync_ssh_private_key_file": private_key,
            "data_sync_progress_interval": 2,
            "rust_toolchain_method": "distro",
            "build_source": "local", "build_local_src": str(self.source), "build_require_cuda": False,
            "build_async_poll_interval": 2,
            "train_tmux_gpu_verify": False,
            "train_tmux_env": {"VOLTX_STEP_MS": "20", "VOLTX_STEPS_PER_EPOCH": "3"},
            "train_tmux_hidden_dim": 16, "train_tmux_num_blocks": 2, "train_tmux_batch_size": 4,
            "train_tmux_codebook_max_files": 100, "train_tmux_codebook_k": 8,
            "harvest_dest": str(self.harvest),
        }
        settings.update(overrides)
        self.private_key = private_key
        self.vars_file = tmp_path / "settings.json"
        self.vars_file.write_text(json.dumps(settings))

    def ssh(self, instance, command):
        return ssh(instance, self.private_key, str(self.tmp / "known_hosts"), command)

    def play(self, *args, expect_rc=0):
        argv = ["ansible-playbook", "-e", "@%s" % self.vars_file, *args]
        run = subprocess.run(argv, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=1200, check=False)
        with open(self.log, "a") as handle:
            handle.write("$ %s\n%s%s\n" % (" ".join(argv), run.stdout, run.stderr))
        assert run.returncode == expect_rc, run.stdout[-6000:] + run.stderr[-3000:]
        return run.stdout


def test_site_runs_the_guide_and_teardown_waits_for_a_verified_harvest(emulator, ssh_keypair, tmp_path):
    emulator.reset()
    site = Site(tmp_path, emulator, ssh_keypair)

    first = site.play("site.yml")
    assert recap(first)[LABEL]["failed"] == 0
    (instance,) = [i for i in emulator.state()["instances"] if not i.get("destroyed")]

    # Nothing changes and nothing is rented on a second run, jobs included.
    second = site.play("site.yml")
    assert recap(second)[LABEL]["changed"] == 0, second[-4000:]
    assert recap(second)["localhost"]["changed"] == 0, second[-4000:]
    assert [i["id"] for i in emulator.state()["instances"] if not i.get("destroyed")] == [instance["id"]]

    # The build is skipped without a source change and redone after one.
    unchanged = site.play("site.yml", "--tags", "build")
    assert "Finished" not in unchanged and recap(unchanged)[LABEL]["changed"] == 0
    main_rs = site.source / "crates" / "volt-learn" / "src" / "lib.rs"
    main_rs.write_text(main_rs.read_text() + "\n// a source change\n")
    rebuilt = site.play("site.yml", "--tags", "build")
    assert recap(rebuilt)[LABEL]["changed"] > 0

    # Teardown refuses while a final artifact is missing on the controller's side: the curriculum may still run,
    # so ask for one that never exists.
    refused = site.play("playbooks/teardown.yml", "-e", '{"harvest_final_artifacts": ["checkpoints/never.bin"]}',
                        expect_rc=2)
    assert "Refusing to destroy" in refused
    assert emulator.containers(), "the instance must survive a refused teardown"

    # Once the jobs finish, the harvest verifies everything and writes the report from the run's real numbers.
    wait_for_jobs(emulator, instance["id"], ssh_keypair[0], str(tmp_path / "known_hosts"))
    site.play("playbooks/harvest.yml")
    status = json.loads((site.harvest / "report" / "status.json").read_text())
    assert {job: state["exit_status"] for job, state in status["jobs"].items()} == {"phase03": 0, "phase21": 0}
    stage3_log = (site.harvest / "logs" / "phase21_stage3.log").read_text()
    assert status["current"]["latest_loss"] == float(re.findall(r"loss=([0-9.]+)", stage3_log)[-1])
    assert status["cost"]["spent_usd"] > 0
    assert (site.harvest / "report" / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    final = site.play("playbooks/teardown.yml")
    assert "FORCED" not in final
    assert emulator.containers() == []
    assert emulator.state()["ledger"]["total"] > 0
    for name in ("codebook_code.bin", "scaled_vfn_stage1.safetensors", "scaled_vfn_stage2.safetensors",
                 "scaled_vfn.safetensors"):
        assert (site.harvest / "checkpoints" / name).stat().st_size > 0
    # The results are the user's alone, and the destroyed instance's pinned host key is forgotten.
    for path in [site.harvest, *site.harvest.rglob("*")]:
        assert path.stat().st_mode & 0o777 == (0o700 if path.is_dir() else 0o600), path
    assert not (tmp_path / "known_hosts" / str(instance["id"])).exists()
    assert emulator.api_key.encode() not in site.log.read_bytes()

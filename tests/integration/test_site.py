"""The guide end to end on the emulator, as `make demo` runs it: the real playbooks through inventories/emulator.

Real SSH into the rented container, a real cargo build of the fixture workspace, real uploads, real tmux jobs.
Site (the playbooks with settings given as extra vars) serves the tests that need settings of their own.
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

sys.path.insert(0, os.path.join(ROOT, "tests"))
from demo import Demo, parse_utc  # noqa: E402  (tests/ is not a package)

LABEL = "volt-x-training"  # the inventory plugin's instance_label default


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


def test_the_demo_runs_the_guide_and_its_summary_matches_the_ledger_and_the_harvest(emulator, tmp_path):
    """`make demo`'s steps (tests/demo.py) through inventories/emulator, with the checks a user would make in between."""
    emulator.reset()
    demo = Demo(emulator, emulator.state_dir, output=str(tmp_path / "demo-output"), echo=False)

    preflight = demo.preflight()
    # The controller has no instance to bootstrap: none of the bootstrap runs there.
    assert "Install python3" not in preflight
    assert not re.search(r"Make a fresh rented instance ready for Ansible's modules\] \**\n(ok|changed)", preflight)
    demo.rent()
    first = demo.site()
    assert recap(first)[LABEL]["failed"] == 0
    # Waiting is progress, not failure: no wait prints FAILED - RETRYING. Only a package download that the
    # mirror refused may be retried (the network between instance and mirror is not ours).
    retried = re.findall(r"^FAILED - RETRYING: \[[^]]+\]: (.*)$", first, flags=re.MULTILINE)
    assert [task for task in retried if not re.match(r"([\w.]+ : )?Install ", task)] == [], retried
    # The build starts in the background before the play waits for the uploads, so the two overlap (which one ends
    # first depends on the machine's load, so only the order is checked).
    build_started = first.index("TASK [voltx.vastai.build : Start cargo build")
    assert build_started < first.index("TASK [voltx.vastai.data_sync : Wait for the uploads and read their progress]")
    instance = demo.instance

    # Nothing changes and nothing is rented on a second run, jobs included.
    second = demo.site()
    assert recap(second)[LABEL]["changed"] == 0, second[-4000:]
    assert recap(second)["localhost"]["changed"] == 0, second[-4000:]
    assert [i["id"] for i in emulator.state()["instances"] if not i.get("destroyed")] == [instance["id"]]

    # The build is skipped without a source change and redone after one.
    unchanged = demo.play("build, unchanged", "site.yml", "--tags", "build")
    assert "Finished" not in unchanged and recap(unchanged)[LABEL]["changed"] == 0
    assert "build up to date, nothing to build" in unchanged
    lib_rs = os.path.join(demo.emulator_dir, "volt-x", "crates", "volt-learn", "src", "lib.rs")
    with open(lib_rs, "a") as handle:
        handle.write("\n// a source change\n")
    rebuilt = demo.play("build, changed", "site.yml", "--tags", "build")
    assert recap(rebuilt)[LABEL]["changed"] > 0 and "build up to date" not in rebuilt

    # A dataset changed and the archives packed into a staging dir of their own (a moved project): the host, long
    # bootstrapped, is sent the changed archive alone, and unpacks it.
    apps = ("local", "VoltData", "phase2", "apps", "data", "apps_introductory_train.jsonl")
    with open(os.path.join(demo.emulator_dir, *apps), "a") as f:
        f.write('{"question": "a new sample", "solutions": "[]"}\n')
    moved = demo.play("site, moved staging", "site.yml", "--tags", "data_sync",
                      "-e", "data_sync_staging_dir=%s" % (tmp_path / "moved-staging"))
    assert re.search(r"VoltStaging\.tar\.zst: .* packed", moved) and "stack_python.tar.zst: " in moved
    assert recap(moved)[LABEL]["failed"] == 0 and recap(moved)[LABEL]["changed"] > 0

    # Teardown refuses while a final artifact is missing on the controller's side: the curriculum may still run,
    # so ask for one that never exists.
    refused = demo.play("teardown, refused", "playbooks/teardown.yml",
                        "-e", '{"harvest_final_artifacts": ["checkpoints/never.bin"]}', expect_rc=2)
    assert "Refusing to destroy" in refused
    assert emulator.containers(), "the instance must survive a refused teardown"

    # The codebook is pulled on its own first; then the monitoring follows the jobs to their end.
    demo.secure_codebook()
    assert os.path.getsize(os.path.join(demo.harvest, "checkpoints", "codebook_code.bin")) > 0
    demo.monitor()
    harvested = demo.final_harvest()
    status = demo.status()
    assert {job: state["exit_status"] for job, state in status["jobs"].items()} == {"phase03": 0, "phase21": 0}
    # The console says what the report says.
    console = " ".join(harvested.split())
    for job, state in status["jobs"].items():
        assert "%s %s" % (job, state["state"]) in console
    with open(os.path.join(demo.harvest, "logs", "phase21_stage3.log")) as handle:
        stage3_log = handle.read()
    assert status["current"]["latest_loss"] == float(re.findall(r"loss=([0-9.]+)", stage3_log)[-1])
    assert status["cost"]["spent_usd"] > 0
    # The host's contract end is the API's, read through the inventory; the training ends long before it.
    assert status["contract"] == {"end_date": instance["end_date"], "warning": None}

    final = demo.teardown()
    assert "FORCED" not in final
    assert emulator.containers() == []

    # The summary's numbers are the ledger's and the harvested files'.
    summary = demo.summary()
    demo.print_summary(summary)
    bill = emulator.state()["ledger"]["instances"][str(instance["id"])]
    assert bill["destroyed"] and bill["cost"] > 0
    assert summary["dph"] == bill["dph_total"] == instance["dph_total"]
    assert summary["spent_usd"] == bill["cost"]
    with open(demo.log) as handle:
        printed = handle.read().split("=== Summary", 1)[1]
    assert "$%.4f/h" % bill["dph_total"] in printed and "$%.4f " % bill["cost"] in printed
    assert "no instance left" in printed
    assert summary["instances_left"] == [] and summary["containers_left"] == []
    with open(os.path.join(demo.harvest, "logs", "phase21_stage1.log")) as handle:
        stage1_started = parse_utc(re.search(r"started (\S+Z)", handle.readline()).group(1))
    with open(os.path.join(demo.harvest, "logs", "phase21.exit")) as handle:
        curriculum_finished = parse_utc(json.load(handle)["finished"])
    assert summary["training_seconds"] == curriculum_finished - stage1_started >= 0
    assert 0 < summary["prep_seconds"] < time.time() - demo.times["reachable"]
    for name in ("codebook_code.bin", "scaled_vfn_stage1.safetensors", "scaled_vfn_stage2.safetensors",
                 "scaled_vfn.safetensors"):
        assert os.path.getsize(os.path.join(summary["artifacts"], name)) > 0
    with open(summary["loss_plot"], "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(summary["report"]) > 0

    # The results are the user's alone, and the destroyed instance's pinned host key is forgotten.
    for folder, dirs, files in os.walk(demo.harvest):
        assert os.stat(folder).st_mode & 0o777 == 0o700, folder
        for name in files:
            assert os.stat(os.path.join(folder, name)).st_mode & 0o777 == 0o600, name
    assert not os.path.exists(os.path.join(demo.emulator_dir, "known_hosts", str(instance["id"])))
    with open(demo.log, "rb") as handle:
        assert emulator.api_key.encode() not in handle.read()

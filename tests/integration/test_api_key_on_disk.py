"""The account key is never written to disk by a run, even one interrupted inside the instance module (issue #24,
item 6).

Without pipelining (a user without this checkout's ansible.cfg), Ansible writes each module with its options to
~/.ansible/tmp/ansible-tmp-*/AnsiballZ_<module>.py and runs it from there; a run killed while the module runs leaves
that file behind. So the key must be no module option: the modules read it from the environment or the key file.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from test_instance_lifecycle import live_instances

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.dirname(sys.executable)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import sandbox  # noqa: E402  (tests/ is put on the path just above)

PAYLOAD = "AnsiballZ_instance.py"


def processes_naming(path):
    """(pid, argv) of the processes whose argv names ``path``: the run, its workers (forked with its argv) and the
    module they run from the HOME under it, wherever Ansible put them (its workers start sessions of their own)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % name, "rb") as handle:
                argv = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # it ended meanwhile
        if path in argv:
            found.append((int(name), argv))
    return found


def signal_all(path, signum):
    for pid, _argv in processes_naming(path):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def files_holding(tree, secret):
    hits = []
    for folder, _dirs, files in os.walk(tree):
        for name in files:
            path = os.path.join(folder, name)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as handle:
                    if secret.encode() in handle.read():
                        hits.append(os.path.relpath(path, tree))
    return hits


@pytest.fixture
def emulator_dir(emulator, tmp_path):
    """What `make emulator` lays out for inventories/emulator, pointed at this session's emulator."""
    directory = tmp_path / "emulator"
    directory.mkdir()
    shutil.copy(os.path.join(emulator.state_dir, "emulator.json"), directory / "emulator.json")
    return sandbox.prepare(str(directory))


def test_a_rent_interrupted_inside_the_instance_module_leaves_no_key_on_disk(emulator, emulator_dir, tmp_path):
    emulator.reset()
    emulator.set_faults(stuck_loading=1)  # the instance never leaves 'loading': the module waits for it
    home = tmp_path / "home"
    (home / "tmp").mkdir(parents=True)
    # The README's emulator campaign (`export VAST_API_KEY=...`, `ansible-playbook -i inventories/emulator`), as a
    # user without this checkout's ansible.cfg runs it: no pipelining. Every file the run writes lies under HOME (the
    # module's directory is ~user/.ansible/tmp, the passwd entry's home, so it is named).
    env = dict(os.environ, HOME=str(home), TMPDIR=str(home / "tmp"), PATH=VENV_BIN + os.pathsep + os.environ["PATH"],
               ANSIBLE_REMOTE_TEMP=str(home / ".ansible" / "tmp"),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".build"), ANSIBLE_PIPELINING="False",
               ANSIBLE_NOCOLOR="1", VOLTX_EMULATOR_DIR=emulator_dir, VAST_API_KEY=emulator.api_key)
    for name in ("VAST_API_URL", "VOLTX_VASTAI_KNOWN_HOSTS_DIR", "ANSIBLE_PRIVATE_KEY_FILE", "ANSIBLE_LOCAL_TEMP",
                 "XDG_CONFIG_HOME"):
        env.pop(name, None)
    output = tmp_path / "ansible.out"
    settings = tmp_path / "settings.json"  # its path in the run's argv names the run's processes
    settings.write_text(json.dumps({"vastai_loading_timeout": 600, "vastai_wait_timeout": 600,
                                    "campaign_burn_in": False}))
    with open(output, "wb") as out:
        run = subprocess.Popen(
            [os.path.join(VENV_BIN, "ansible-playbook"), "-i", "inventories/emulator", "playbooks/rent.yml",
             "-e", "@%s" % settings], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        # Inside the instance module: it rented the instance and waits for it to leave 'loading'.
        deadline = time.time() + 300
        while not (live_instances(emulator) and any(PAYLOAD in argv for _pid, argv in processes_naming(str(home)))):
            assert run.poll() is None, output.read_text()[-4000:]
            assert time.time() < deadline, "the instance module was never seen waiting:\n" + output.read_text()[-4000:]
            time.sleep(0.2)
        # Killed outright (a closed terminal's session, the OOM killer, a power cut): nothing cleans up after it.
        # (Ctrl-C is answered: the instance action passes it to the module, which fails naming the instance, and
        # Ansible removes the payload; tests/integration/test_failure_paths.py covers that.)
    finally:
        signal_all(str(tmp_path), signal.SIGKILL)
        run.wait()

    payloads = [os.path.join(folder, name) for folder, _dirs, files in os.walk(home) for name in files
                if name == PAYLOAD]
    assert payloads, "the interrupted run left no module payload to look into: %s" % sorted(os.listdir(home))
    assert files_holding(home, emulator.api_key) == []
    assert emulator.api_key not in output.read_text()
    emulator.reset()  # the instance rented before the interrupt

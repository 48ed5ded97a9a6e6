"""The emulator as a user's sandbox (`make emulator`, `make emulator-stop`), and what inventories/emulator reads.

    python tests/sandbox.py start [--dir DIR]   start the emulator in the background (default DIR: .emulator)
    python tests/sandbox.py stop [--dir DIR]    stop it and remove every container it started

DIR holds everything inventories/emulator points at (VOLTX_EMULATOR_DIR names another DIR):
    emulator.json      the emulator's URL and API key (mode 0600), written by the emulator once it listens
    ssh/id_ed25519     the SSH key the rented instances trust
    local/             generated data in the guide's layout (Volt_X/checkpoints, VoltData)
    volt-x/            the fixture Volt-X workspace, pushed as the local build source
    known_hosts/       the instances' pinned host keys (the emulator's ids start over with every start)
    controller/        for a user's own project, readable by all: the collection's tarball, inventory.vastai.yml
                       and group_vars/ (the emulator's URL, the stand-ins, the data and source above), and
                       vast_api_key, the emulator's throwaway key, for VAST_API_KEY (never in the inventory or a
                       variable: the modules read it from the environment)
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMULATOR_PACKAGE_DIR = os.path.join(ROOT, "tests", "emulator")
sys.path.insert(0, EMULATOR_PACKAGE_DIR)

from vast_emulator.containers import Docker, state_dir_hash  # noqa: E402  (path set just above)
from vast_emulator.testing import build_test_image  # noqa: E402

DEFAULT_DIR = os.path.join(ROOT, ".emulator")
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "volt-x")
STAND_INS = os.path.join(ROOT, "inventories", "emulator", "group_vars", "all", "10-stand-ins.yml")


def prepare(directory):
    """The key, the data and the source the emulator inventory's settings name; what exists is kept."""
    os.makedirs(os.path.join(directory, "ssh"), mode=0o700, exist_ok=True)
    key = os.path.join(directory, "ssh", "id_ed25519")
    if not os.path.exists(key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "voltx-sandbox", "-f", key], check=True)
    local = os.path.join(directory, "local")
    if not os.path.isdir(local):
        subprocess.run([sys.executable, os.path.join(ROOT, "tests", "fixtures", "generate_data.py"), local],
                       check=True, capture_output=True)
    source = os.path.join(directory, "volt-x")
    if not os.path.isdir(source):
        shutil.copytree(FIXTURE, source, ignore=shutil.ignore_patterns("target"))
    return directory


def _pid(directory):
    try:
        with open(os.path.join(directory, "emulator.pid")) as handle:
            pid = int(handle.read())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def start(directory, image=None, timeout=60):
    """Starts the emulator detached from this process; returns its URL. One already running is kept."""
    directory = os.path.abspath(directory)
    prepare(directory)
    ready_file = os.path.join(directory, "emulator.json")
    if _pid(directory) and os.path.exists(ready_file):
        if not os.path.isdir(os.path.join(directory, "controller")):
            controller_files(directory)
        return _url(ready_file)
    image = image or build_test_image()
    if os.path.exists(ready_file):
        os.remove(ready_file)
    env = dict(os.environ, PYTHONPATH=EMULATOR_PACKAGE_DIR)
    env.pop("VAST_EMULATOR_API_KEY", None)
    with open(os.path.join(directory, "emulator.log"), "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "vast_emulator", "--host", "127.0.0.1", "--port", "0", "--state-dir", directory,
             "--image", image], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, env=env,
            start_new_session=True)
    with open(os.path.join(directory, "emulator.pid"), "w") as handle:
        handle.write(str(process.pid))
    deadline = time.time() + timeout
    while not os.path.exists(ready_file):
        if process.poll() is not None:
            log = os.path.join(directory, "emulator.log")
            raise SystemExit("the emulator exited with %s; see %s" % (process.returncode, log))
        if time.time() > deadline:
            raise SystemExit("the emulator did not start within %ss" % timeout)
        time.sleep(0.2)
    controller_files(directory)
    return _url(ready_file)


def _readable_by_all(tree):
    for path, _dirs, files in os.walk(tree):
        os.chmod(path, 0o755)
        for name in files:
            os.chmod(os.path.join(path, name), 0o644)


def controller_files(directory):
    """What a user's own project needs to drive the emulator with the installed collection, in <directory>/controller/,
    readable by every local user (the emulator is root's, the controller need not be): the collection's tarball, an
    inventory and its group_vars (the stand-ins of inventories/emulator, the emulator's URL and its own throwaway key,
    the generated data and the fixture Volt-X of <directory>), to copy into that project, and the emulator's throwaway
    key in vast_api_key, for VAST_API_KEY."""
    with open(os.path.join(directory, "emulator.json")) as handle:
        emulator = json.load(handle)
    controller = os.path.join(directory, "controller")
    shutil.rmtree(controller, ignore_errors=True)
    os.makedirs(os.path.join(controller, "group_vars", "all"))
    subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-galaxy"), "collection", "build", ROOT,
                    "--output-path", controller], check=True, capture_output=True)
    shutil.copy(STAND_INS, os.path.join(controller, "group_vars", "all", os.path.basename(STAND_INS)))
    # Each start gives the instance ids anew: their host keys are pinned apart from those of other starts.
    known_hosts = "{{ lookup('ansible.builtin.env', 'HOME') }}/.local/state/voltx-vastai/emulator-%d/known_hosts" % (
        time.time())
    inventory = {"plugin": "voltx.vastai.vastai", "api_url": emulator["url"], "known_hosts_dir": known_hosts}
    settings = {
        "vastai_api_url": emulator["url"],
        "data_sync_local_checkpoints_dir": os.path.join(directory, "local", "Volt_X", "checkpoints"),
        "data_sync_local_data_root": os.path.join(directory, "local", "VoltData"),
        "build_local_src": os.path.join(directory, "volt-x"),
        # The emulator's machines are not Vast.ai's: a blocklist of their own, never the user's real one.
        "vastai_blocklist_file":
            "{{ inventory_dir | default(ansible_inventory_sources[0] | dirname, true) }}/emulator-blocklist.json",
    }
    for name, content in (("inventory.vastai.yml", inventory),
                          (os.path.join("group_vars", "all", "20-emulator.yml"), settings)):
        with open(os.path.join(controller, name), "w") as handle:
            handle.write("---\n# Written by `make emulator` for the emulator at %s.\n" % emulator["url"])
            yaml.safe_dump(content, handle, default_flow_style=False, sort_keys=False, width=1000)
    with open(os.path.join(controller, "vast_api_key"), "w") as handle:
        handle.write(emulator["api_key"] + "\n")
    os.chmod(directory, 0o755)
    for tree in ("controller", "local", "volt-x"):
        _readable_by_all(os.path.join(directory, tree))
    return controller


def _url(ready_file):
    with open(ready_file) as handle:
        return json.load(handle)["url"]


def stop(directory, timeout=60):
    """Stops the emulator (it removes its containers on SIGTERM) and sweeps any container left."""
    directory = os.path.abspath(directory)
    pid = _pid(directory)
    if pid:
        os.kill(pid, signal.SIGTERM)
        deadline = time.time() + timeout
        while _pid(directory) and time.time() < deadline:
            time.sleep(0.2)
    docker = Docker(None, state_dir_hash(directory))
    docker.sweep()
    for name in ("emulator.pid", "emulator.json"):
        if os.path.exists(os.path.join(directory, name)):
            os.remove(os.path.join(directory, name))
    return docker.labelled()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("--dir", default=os.environ.get("VOLTX_EMULATOR_DIR") or DEFAULT_DIR)
    args = parser.parse_args(argv)
    if args.action == "start":
        url = start(args.dir)
        print("The Vast.ai emulator runs at %s (state in %s). Drive it with the real playbooks, its key exported:\n"
              "  export VAST_API_KEY=$(cat %s)\n"
              "  .venv/bin/ansible-playbook -i inventories/emulator site.yml\n"
              "  .venv/bin/ansible-playbook -i inventories/emulator playbooks/harvest.yml\n"
              "  .venv/bin/ansible-playbook -i inventories/emulator playbooks/teardown.yml\n"
              "or, as any user, from a directory of your own with the installed collection (README, Sandbox):\n"
              "  export VOLTX_EMULATOR=%s\n"
              "Stop it with: make emulator-stop" % (
                  url, os.path.relpath(args.dir), os.path.relpath(os.path.join(args.dir, "controller", "vast_api_key")),
                  os.path.join(os.path.abspath(args.dir), "controller")))
    else:
        left = stop(args.dir)
        if left:
            raise SystemExit("containers left behind: %s" % ", ".join(left))
        print("The emulator is stopped and its containers are removed.")


if __name__ == "__main__":
    main()

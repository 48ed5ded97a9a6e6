"""`make demo`: the main job on the built-in Vast.ai emulator.

Starts the emulator, then does what a user does against the real service: rent with the guide's
filters (playbooks/rent.yml), ping the instance through the inventory plugin, destroy it
(playbooks/teardown.yml, forced: there are no results to harvest yet, and it says what that loses).
Prints the emulator's bill and checks that no container is left behind.
"""

import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "emulator"))

from vast_emulator.testing import running_emulator  # noqa: E402  (path set just above)


def step(title, argv, env):
    print("\n=== %s\n$ %s" % (title, " ".join(argv)), flush=True)
    subprocess.run(argv, cwd=ROOT, env=env, check=True)


def main():
    venv_bin = os.path.dirname(sys.executable)
    with tempfile.TemporaryDirectory(prefix="voltx-demo-") as scratch:
        key = os.path.join(scratch, "id_ed25519")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "voltx-demo", "-f", key], check=True)
        with running_emulator(os.path.join(scratch, "emulator"), image=os.environ.get("VOLTX_TEST_IMAGE")) as emulator:
            env = dict(os.environ,
                       PATH=venv_bin + os.pathsep + os.environ.get("PATH", ""),
                       ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".build"),
                       ANSIBLE_PRIVATE_KEY_FILE=key,
                       ANSIBLE_FORCE_COLOR="0",
                       VAST_API_URL=emulator.url,
                       VAST_API_KEY=emulator.api_key,
                       # Pinned host keys in the scratch directory: the emulator's ids start over every run.
                       VOLTX_VASTAI_KNOWN_HOSTS_DIR=os.path.join(scratch, "known_hosts"),
                       VOLTX_VASTAI_BLOCKLIST=os.path.join(scratch, "blocklist.json"))
            print("Vast.ai emulator at %s (instances are containers of the test image)" % emulator.url)
            try:
                step("Rent with the guide's filters", [
                    "ansible-playbook", "playbooks/rent.yml",
                    "-e", "vastai_ssh_public_key_file=%s.pub" % key,
                    "-e", "vastai_loading_timeout=60", "-e", "vastai_wait_timeout=180",
                    # The emulator's containers have no GPU to burn in.
                    "-e", "campaign_burn_in=false"], env)
                step("Bootstrap python3 on the bare host through the inventory plugin", [
                    "ansible", "-i", "inventories/vastai.yml", "volt-x-training",
                    "-m", "ansible.builtin.include_role", "-a", "name=voltx.vastai.campaign"], env)
                step("Ping it", [
                    "ansible", "-i", "inventories/vastai.yml", "volt-x-training", "-m", "ansible.builtin.ping"], env)
            finally:
                step("Destroy it", ["ansible-playbook", "playbooks/teardown.yml", "-e", "harvest_teardown_force=true",
                                    "-e", "harvest_dest=%s" % os.path.join(scratch, "harvest")], env)
                ledger = emulator.state().get("ledger", {})
                print("\nEmulated bill: $%.6f" % float(ledger.get("total", ledger.get("total_dollars", 0.0))))
                left = emulator.containers()
                print("containers left: %d" % len(left))
                if left:
                    sys.exit("the demo left containers behind: %s" % ", ".join(left))


if __name__ == "__main__":
    main()

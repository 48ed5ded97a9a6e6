"""Pinned host keys: the first connection to an instance records its key, a changed key is refused, and the
teardown forgets the key of the instance it destroyed."""

import subprocess

from test_inventory_plugin import write_inventory
from test_instance_lifecycle import LABEL, rent_task


def unreachable_messages(runner):
    return [e["event_data"]["res"].get("msg", "") for e in runner.events if e["event"] == "runner_on_unreachable"]


def docker(*argv):
    return subprocess.run(["docker", *argv], check=True, capture_output=True, text=True, timeout=60).stdout


def served_keys(port):
    """The host keys sshd presents right now (base64 blobs), as ssh-keyscan reads them."""
    scan = subprocess.run(["ssh-keyscan", "-p", str(port), "127.0.0.1"], capture_output=True, text=True,
                          timeout=30, check=False)
    return {line.split()[2] for line in scan.stdout.splitlines() if len(line.split()) == 3}


def reload_sshd(container, port, script, expect_change_from):
    """Run `script` in the container, make sshd re-read its host keys and wait until it serves other keys."""
    docker("exec", container, "sh", "-c", script + "; kill -HUP $(cat /run/sshd.pid 2>/dev/null || echo 1)")
    for _attempt in range(200):
        keys = served_keys(port)
        if keys and keys != expect_change_from:
            return keys
    raise AssertionError("sshd in %s still serves the old host keys" % container)


def test_changed_host_key_is_refused_and_teardown_forgets_the_key(ansible, emulator, tmp_path, ssh_keypair):
    # No connection multiplexing: an open master connection would skip the host key check of a new login.
    ansible.envvars["ANSIBLE_SSH_ARGS"] = "-o ControlMaster=no"
    # What ansible-runner sets by default, and many users in their ansible.cfg: the pin must hold anyway.
    ansible.envvars["ANSIBLE_HOST_KEY_CHECKING"] = "False"
    runner, results = ansible.playbook([rent_task(ssh_public_key=ssh_keypair[1])])
    assert runner.status == "successful", runner.stdout.read()
    rented = results["Rent"]["instance"]
    inventory_file = write_inventory(tmp_path)
    pinned = ansible.workdir / "known_hosts" / str(rented["id"])

    # First contact (raw: the bare host has no python yet): trusted and recorded in the instance's own file,
    # with the key sshd serves.
    ping = ansible.adhoc(inventory_file, LABEL, "ansible.builtin.raw", "true")
    assert ping.status == "successful", ping.stdout.read()
    original = served_keys(rented["ssh_port"])
    recorded = pinned.read_text()
    assert original and {line.split()[2] for line in recorded.splitlines()} <= original

    # The instance now answers with other host keys (someone on the path, or a swapped machine): refused.
    (container,) = [name for name in emulator.containers() if name.startswith("vastemu-%d-" % rented["id"])]
    reload_sshd(container, rented["ssh_port"],
                "mkdir -p /root/old-keys && cp -p /etc/ssh/ssh_host_* /root/old-keys/ && rm /etc/ssh/ssh_host_* "
                "&& ssh-keygen -A", expect_change_from=original)
    ping = ansible.adhoc(inventory_file, LABEL, "ansible.builtin.raw", "true")
    assert ping.status == "failed", ping.stdout.read()
    (message,) = unreachable_messages(ping)
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in message and "Host key verification failed" in message
    assert str(pinned) in message, "the message must name the file that pins the key"
    assert pinned.read_text() == recorded, "a changed key must never replace the pinned one"

    # The original keys are accepted again.
    reload_sshd(container, rented["ssh_port"], "cp -p /root/old-keys/* /etc/ssh/", expect_change_from=served_keys(rented["ssh_port"]))
    ping = ansible.adhoc(inventory_file, LABEL, "ansible.builtin.raw", "true")
    assert ping.status == "successful", ping.stdout.read()

    # Teardown (forced: there is nothing to harvest) destroys the instance and forgets its key.
    playbook = tmp_path / "teardown.yml"
    playbook.write_text(
        "- hosts: %s\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.import_role:\n        name: voltx.vastai.harvest\n        tasks_from: teardown\n" % LABEL)
    teardown = subprocess.run(
        ["ansible-playbook", "-i", str(inventory_file), str(playbook), "-e", "harvest_teardown_force=true",
         "-e", "harvest_dest=%s" % (tmp_path / "harvest")],
        env=dict(ansible.envvars, HOME=str(tmp_path)), capture_output=True, text=True, timeout=300, check=False)
    assert teardown.returncode == 0, teardown.stdout[-4000:] + teardown.stderr[-2000:]
    assert not pinned.exists()
    assert [i for i in emulator.state()["instances"] if not i.get("destroyed")] == []
    # The harvest destination is the user's alone.
    assert (tmp_path / "harvest").stat().st_mode & 0o777 == 0o700

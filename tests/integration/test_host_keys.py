"""Pinned host keys: the first connection to an instance records its key, a changed key is refused, and the
teardown forgets the key of the instance it destroyed. A changed key is its own outcome: no playbook takes the
instance for lost, not even over a master connection opened before the swap. Every ssh the controller starts by hand
reaches the instance as Ansible does, with the key the inventory names."""

import os
import re
import shlex
import subprocess

from conftest import ROOT
from test_failure_paths import rent
from test_inventory_plugin import write_inventory
from test_instance_lifecycle import LABEL, live_instances, rent_task
from test_site import LABEL as SITE_LABEL, Site


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


def swap_host_keys(emulator, instance):
    """The instance's sshd now presents new host keys (another machine at its address, or someone on the path)."""
    (container,) = [name for name in emulator.containers() if name.startswith("vastemu-%d-" % instance["id"])]
    reload_sshd(container, instance["ssh_port"], "rm /etc/ssh/ssh_host_* && ssh-keygen -A",
                expect_change_from=served_keys(instance["ssh_port"]))


def ansible_raw(site, command="true"):
    """One ad-hoc raw command on the training instance through Ansible's own connection (ansible.cfg's ssh_args)."""
    return subprocess.run(["ansible", SITE_LABEL, "-m", "ansible.builtin.raw", "-a", command], cwd=ROOT,
                          env=site.env, capture_output=True, text=True, timeout=300, check=False)


def assert_key_change_named(output, instance, pinned):
    text = " ".join(output.split())  # the callback wraps long lines
    assert "%s (instance %d) presents another SSH host key than the one pinned in %s" % (
        SITE_LABEL, instance["id"], pinned) in text, text[-4000:]
    # Not taken for an instance that is gone or merely unreachable.
    assert "Nothing was harvested" not in text and "Refusing to destroy" not in text and "FORCED" not in text


def test_a_changed_host_key_stops_harvest_teardown_and_recover_and_destroys_nothing(emulator, ssh_keypair, tmp_path):
    site = Site(tmp_path, emulator, ssh_keypair)
    site.env["ANSIBLE_SSH_ARGS"] = "-o ControlMaster=no"  # no master: each playbook logs in afresh
    instance = rent(site, emulator)
    assert ansible_raw(site).returncode == 0  # first contact pins the key
    pinned = tmp_path / "known_hosts" / str(instance["id"])
    recorded = pinned.read_text()
    swap_host_keys(emulator, instance)

    for playbook in ("playbooks/harvest.yml", "playbooks/teardown.yml", "playbooks/recover.yml"):
        assert_key_change_named(site.play(playbook, expect_rc=2), instance, pinned)
    # Still there, still the only one (recover rented no replacement), and the pin is the original key.
    assert [i["id"] for i in live_instances(emulator)] == [instance["id"]]
    assert pinned.read_text() == recorded
    assert not (site.harvest / "manifest.json").exists() or "files" not in (site.harvest / "manifest.json").read_text()

    # Told to, teardown destroys it through the API (nothing is pulled over the changed key) and forgets the pin.
    forced = " ".join(site.play("playbooks/teardown.yml", "-e", "harvest_teardown_force=true").split())
    assert "FORCED destroy" in forced and "presenting a changed SSH host key" in forced
    assert live_instances(emulator) == [] and not pinned.exists()


def test_a_master_connection_left_open_by_an_earlier_run_does_not_hide_a_swapped_key(emulator, ssh_keypair, tmp_path):
    site = Site(tmp_path, emulator, ssh_keypair)
    # ansible.cfg's ControlPersist=300s, with masters of this test's own.
    site.env["ANSIBLE_SSH_CONTROL_PATH_DIR"] = str(tmp_path / "cp")
    instance = rent(site, emulator)
    assert ansible_raw(site).returncode == 0  # an earlier run: pins the key and leaves its master open
    assert os.listdir(tmp_path / "cp"), "no master connection was left open"
    swap_host_keys(emulator, instance)
    # Ansible's own connection goes through that master without a new key exchange: the swap is not seen there.
    assert ansible_raw(site).returncode == 0

    assert_key_change_named(site.play("playbooks/harvest.yml", expect_rc=2), instance, tmp_path / "known_hosts" /
                            str(instance["id"]))
    assert [i["id"] for i in live_instances(emulator)] == [instance["id"]]
    site.play("playbooks/teardown.yml", "-e", "harvest_teardown_force=true")
    assert live_instances(emulator) == []


def test_a_key_named_only_by_the_inventory_serves_the_burn_in_the_uploads_and_the_attach_hint(
        emulator, ssh_keypair, tmp_path):
    emulator.reset()
    # The key lies where ssh never looks by itself and only the inventory names it: no ANSIBLE_PRIVATE_KEY_FILE, no
    # agent, no ~/.ssh (ssh reads the home directory from the password database, which has none).
    key = tmp_path / "keys" / "elsewhere" / "vast key"
    key.parent.mkdir(parents=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "vastai.yml").write_text("plugin: voltx.vastai.vastai\n")
    (inventory / "group_vars" / "all.yml").write_text("ansible_private_key_file: '%s'\n" % key)
    site = Site(tmp_path, emulator, ssh_keypair, campaign_burn_in=True, campaign_burn_in_checks=["throughput"],
                campaign_burn_in_probe_mb=1, campaign_burn_in_min_upload_mbit=1, campaign_burn_in_min_download_mbit=1,
                vastai_ssh_public_key_file="%s.pub" % key)
    del site.env["ANSIBLE_PRIVATE_KEY_FILE"]
    site.env.pop("SSH_AUTH_SOCK", None)

    out = " ".join(site.play("-i", str(inventory), "site.yml").split())
    assert "passed the burn-in (throughput)" in out
    assert re.search(r"stack_python: sent (\d+) of \1 bytes", out), out[-4000:]
    # The printed attach hint works as printed (asking whether the session is there instead of attaching to it).
    # (a single-quoted YAML string, folded by the callback: joined again with spaces, its '' is one ')
    argv = shlex.split(re.search(r"' +(ssh .*? tmux attach -t training)'", out).group(1).replace("''", "'"))
    assert argv[argv.index("-i") + 1] == str(key)
    argv[argv.index("attach")] = "has-session"
    assert subprocess.run(argv, env=site.env, capture_output=True, text=True, timeout=60,
                          check=False).returncode == 0
    site.play("-i", str(inventory), "playbooks/teardown.yml", "-e", "harvest_teardown_force=true")

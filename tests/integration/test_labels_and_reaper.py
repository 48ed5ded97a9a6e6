"""Labels are data, and the reaper reaps the inventory's account (issue #24, items 2 and 3).

A label that is code, a path or shell is refused before anything is rented; one that comes from the API never
names a directory outside the harvest root; the reaper uses the inventory's API and refuses another one.
"""

import json
import os
import time
import urllib.request

import pytest

from test_fleet import rent
from test_instance_lifecycle import api_requests, guide_matches, live_instances
from test_site import Site


def put_inventory(tmp_path, **options):
    folder = tmp_path / "inventory"
    folder.mkdir(exist_ok=True)
    path = folder / "vastai.yml"
    path.write_text("".join("%s: %s\n" % (key, json.dumps(value))
                            for key, value in dict(plugin="voltx.vastai.vastai", **options).items()))
    return str(path)


def api(emulator, method, path, body):
    """The account's API as a user's curl would call it: what the collection would never send."""
    request = urllib.request.Request(emulator.url + path, data=json.dumps(body).encode(), method=method,
                                     headers={"Content-Type": "application/json",
                                              "Authorization": "Bearer %s" % emulator.api_key})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def code_label(tmp_path, name):
    """A label that, were it ever templated or run by a shell, would leave a file behind."""
    return "volt-x-{{ lookup('pipe', 'touch %s-jinja') }}-$(touch %s-shell)" % (tmp_path / name, tmp_path / name)


@pytest.mark.parametrize("option", ["instance_label", "instances"])
def test_a_label_that_is_code_a_path_or_shell_is_refused_before_anything_is_rented(option, emulator, ssh_keypair,
                                                                                   tmp_path):
    emulator.reset()
    site = Site(tmp_path, emulator, ssh_keypair)
    labels = ["volt-x-z/../../../escape", "volt-x-a/b", code_label(tmp_path, "pwned"), "volt-x-$(id)"]
    for label in labels:
        if option == "instance_label":
            inventory, named = put_inventory(tmp_path, instance_label=label), "instance_label"
        else:
            inventory = put_inventory(tmp_path, instances=[{"label": "volt-x-fine"}, {"label": label}])
            named = "instances[1].label"
        site.play("-i", inventory, "playbooks/rent.yml", expect_rc=2)
        output = site.log.read_text()  # the inventory's warnings are on stderr
        assert "Vast.ai inventory: %s: %r is not a label this collection rents under" % (named, label) in output
        assert "letters, digits, '.', '_' or '-'" in output
    assert [r for r in api_requests(emulator) if r["method"] == "PUT" and "/asks/" in r["path"]] == []
    assert live_instances(emulator) == []
    assert not (tmp_path / "pwned-jinja").exists() and not (tmp_path / "pwned-shell").exists()


def test_labels_from_the_api_never_leave_the_harvest_root(emulator, ssh_keypair, tmp_path):
    emulator.reset()
    root = tmp_path / "project" / "harvest"
    site = Site(tmp_path, emulator, ssh_keypair, harvest_dest=str(root) + "/{{ inventory_hostname }}")
    # Instances of ours (the label prefix) labelled by hand, through the API, as the fault walk did.
    api(emulator, "POST", "/api/v0/ssh/", {"ssh_key": ssh_keypair[1]})
    labels = ["volt-x-z/../../../faults-escape", code_label(tmp_path, "pwned")]
    offers = [offer["id"] for offer in guide_matches()[:len(labels)]]
    ids = [api(emulator, "PUT", "/api/v0/asks/%d/" % offer, {
        "client_id": "me", "image": "nvidia/cuda:12.8.0-devel-ubuntu22.04", "disk": 50.0, "runtype": "ssh_proxy",
        "env": {}, "label": label})["new_contract"] for offer, label in zip(offers, labels)]
    for _attempt in range(60):
        if all(i.get("actual_status") == "running" for i in live_instances(emulator)):
            break
        time.sleep(1)

    output = site.play("playbooks/reap.yml", "-e", "campaign_reap_ttl_hours=0.0001")
    assert "reap: destroyed 2 instance(s)" in output, output[-3000:]
    assert live_instances(emulator) == []
    written = sorted(os.path.relpath(os.path.join(folder, name), tmp_path)
                     for folder, _dirs, files in os.walk(tmp_path) for name in files
                     if name in ("manifest.json", "loss.png", "status.json"))
    assert written and all(path.startswith("project/harvest/") for path in written), written
    # Each under a name of its own, made from the instance's id: the label is only shown, never a path.
    assert sorted(os.listdir(root)) == sorted("vastai-%d" % i for i in ids)
    assert not (tmp_path / "faults-escape").exists()
    assert not (tmp_path / "pwned-jinja").exists() and not (tmp_path / "pwned-shell").exists()


def test_the_reaper_reaps_the_inventory_s_account_and_refuses_another(ansible, emulator, ssh_keypair, tmp_path):
    orphan = rent(ansible, "volt-x-orphan")
    emulator.preempt(orphan, kind="host_lost")
    # The key where the vastai CLI keeps it, none in the environment: the inventory and the modules both read it.
    config = tmp_path / "config"
    (config / "vastai").mkdir(parents=True)
    (config / "vastai" / "vast_api_key").write_text(emulator.api_key)
    (config / "vastai" / "vast_api_key").chmod(0o600)
    inventory = put_inventory(tmp_path, api_url=emulator.url)

    site = Site(tmp_path, emulator, ssh_keypair)
    site.env.update(XDG_CONFIG_HOME=str(config), VAST_API_KEY="")
    settings = json.loads(site.vars_file.read_text())

    def reap(expect_rc, **play_vars):
        site.vars_file.write_text(json.dumps(dict(settings, **play_vars)))
        return site.play("-i", inventory, "playbooks/reap.yml", expect_rc=expect_rc)

    # Another endpoint than the inventory's: refused before anything is listed or destroyed, also while the
    # environment exports the URL that reaches the instances.
    refused = reap(2, vastai_api_url="http://127.0.0.1:9")
    assert "the inventory lists the instances at %s, this play's API is http://127.0.0.1:9" % emulator.url in refused
    assert "Nothing was listed or destroyed." in refused
    assert [i["id"] for i in live_instances(emulator)] == [orphan]

    # The inventory's own account, the API from the play's variables as in every other playbook.
    site.env.update(VAST_API_URL="")
    done = reap(0, vastai_api_url=emulator.url)
    assert "reap: destroyed 1 instance(s) (volt-x-orphan #%d: status offline" % orphan in done
    assert live_instances(emulator) == []
    assert emulator.api_key.encode() not in (tmp_path / "ansible.log").read_bytes()

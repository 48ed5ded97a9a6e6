"""The README's commands and its table of guide steps, checked against what the playbooks and the roles really do.

The "Using it against Vast.ai" block is run against the emulator from an installed tarball by test_packaging.py;
`make demo` and `make test` are the CI itself. The sandbox section's commands are run by that section's own test.
Everything else is run (or, for what cannot run here, checked) below. No Docker, no network; seconds.
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from conftest import ROOT, VENV_BIN

with open(os.path.join(ROOT, "README.md")) as _f:
    README = _f.read()

ROLES = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "roles", "*")))


def section(title):
    """The README's text under the heading `title`, up to the next heading (a `# ` line in a code block is none)."""
    match = re.search(r"^#+ %s\n" % re.escape(title), README, flags=re.M)
    assert match, "the README has no section %r" % title
    lines, fenced = [], False
    for line in README[match.end():].splitlines(keepends=True):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#+ ", line):
            break
        lines.append(line)
    return "".join(lines)


def code_blocks(text, lang="bash"):
    return re.findall(r"^```%s\n(.*?)^```" % lang, text, flags=re.M | re.S)


def commands(block):
    """The command of each line of a bash block, without its trailing comment."""
    return [re.sub(r"\s+#\s.*$", "", line).strip() for line in block.splitlines() if line.strip()]


def vast_ai_commands():
    return commands(code_blocks(section("Using it against Vast.ai"))[0])


def step_table():
    """{playbook path: [tags]} from the README's table of guide steps."""
    rows = {}
    for line in section("The guide, step by step").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[1].startswith("`") and cells[1].endswith(".yml`"):
            rows[cells[1].strip("`")] = re.findall(r"`([a-z_]+)`", cells[2])
    return rows


def imported(playbook):
    """The playbooks a playbook imports, as paths relative to the checkout (target.yml left out: tags `always`)."""
    with open(os.path.join(ROOT, playbook)) as f:
        plays = yaml.safe_load(f)
    base = os.path.dirname(playbook)
    return [os.path.normpath(os.path.join(base, p["ansible.builtin.import_playbook"])) for p in plays
            if "ansible.builtin.import_playbook" in p and not p["ansible.builtin.import_playbook"].endswith("target.yml")]


def listed_tags(playbook):
    """The tags `ansible-playbook <playbook> --list-tags` prints, without `always` and the roles' `<role>_<phase>`."""
    env = dict(os.environ, PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-playbook"), playbook, "--list-tags", "-i", "localhost,"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tags = set()
    for listed in re.findall(r"TASK TAGS: \[(.*)\]", proc.stdout):
        tags.update(t.strip() for t in listed.split(",") if t.strip())
    phases = {t for t in tags if t not in ROLES and any(t.startswith(role + "_") for role in ROLES)}
    return tags - phases - {"always"}


def test_the_table_names_every_playbook_once():
    rows = step_table()
    shipped = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "playbooks", "*.yml")))
    # target.yml is imported by the others (find the instance); playbooks/site.yml is the table's `site.yml`.
    not_rows = ("playbooks/target.yml", "playbooks/site.yml")
    assert sorted(rows) == sorted(["site.yml"] + [p for p in shipped if p not in not_rows])


def expected_tags(playbook, rows):
    tags = set(rows.get(playbook, []))
    for child in imported(playbook):
        tags |= expected_tags(child, rows)
    return tags


@pytest.mark.parametrize("playbook", sorted(step_table()))
def test_list_tags_match_the_table(playbook):
    """A step's tags select it, and `site.yml --list-tags` is exactly what the table says of the steps it runs."""
    rows = step_table()
    assert listed_tags(playbook) == expected_tags(playbook, rows)
    if playbook == "site.yml":
        steps = imported("playbooks/site.yml")
        assert rows["site.yml"] == [] and set(expected_tags("site.yml", rows)) == set().union(*(rows[s] for s in steps))


def test_every_role_and_every_step_has_a_tag():
    rows = step_table()
    tags = set().union(*rows.values())
    for role in ROLES:
        # Dependencies of the instance roles with nothing to pick by tag: campaign's bootstrap and scripts' one fact
        # are tagged `always`.
        if role not in ("campaign", "scripts"):
            assert role in tags, role
    for playbook, row in rows.items():
        if playbook != "site.yml":
            assert os.path.splitext(os.path.basename(playbook))[0] in row, (playbook, row)


@pytest.mark.parametrize("command", [c for b in code_blocks(README) for c in commands(b) if c.startswith("ansible-doc")])
def test_ansible_doc_commands(command, tmp_path):
    env = dict(os.environ, PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""), ANSIBLE_NOCOLOR="1",
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".build"))
    proc = subprocess.run(command.split(), cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0 and re.search(r"^ *(OPTIONS|Options)", proc.stdout, flags=re.M), proc.stderr
    if command.endswith("voltx.vastai.campaign"):
        # The README sends users there for the guide's settings it no longer lists itself.
        for setting in ("vastai_gpu_name", "vastai_max_dph", "vastai_image", "vastai_disk_gb",
                        "vastai_ssh_public_key_file"):
            assert setting in proc.stdout, setting


def controller_block():
    return commands(code_blocks(section("The controller"))[0])


def test_controller_packages_are_real_debian_packages():
    (apt,) = [c for c in controller_block() if "apt-get install" in c]
    packages = apt.split("-y", 1)[1].split()
    for tool in ("rsync", "zstd", "pigz", "openssh-client"):
        assert tool in packages, tool
    if shutil.which("apt-get") is None:
        pytest.fail("apt-get is needed to check the README's package names")
    proc = subprocess.run(["apt-get", "install", "-s"] + packages, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_controller_python_packages_are_the_ones_the_suite_pins(tmp_path):
    (venv, pip) = [c for c in controller_block() if "pip install" in c][0].split(" && ")
    assert venv.startswith("python3 -m venv ")
    wanted = pip.split("pip install", 1)[1].split()
    with open(os.path.join(ROOT, "requirements.txt")) as f:
        pinned = {re.split(r"[=<>\[ ]", line.strip())[0] for line in f if line.strip() and not line.startswith("#")}
    assert set(wanted) <= pinned, set(wanted) - pinned
    # What the controller imports (the API client, JMESPath selects, the loss plot) is all there.
    for module in ("requests", "jmespath", "matplotlib", "ansible"):
        assert subprocess.run([sys.executable, "-c", "import %s" % module], check=False).returncode == 0, module


def test_windows_paths_are_where_wsl_mounts_the_guides_folders():
    windows = section("On Windows: WSL2")
    assert "wsl --install" in windows  # PowerShell, on Windows: cannot run here
    (settings,) = code_blocks(windows, "yaml")
    paths = yaml.safe_load(settings)
    wsl = {r"C:\Volt_X": "/mnt/c/Volt_X", r"D:\VoltData": "/mnt/d/VoltData"}
    for windows_path, mount in wsl.items():
        assert windows_path in windows and mount in windows
    assert paths == {"data_sync_local_checkpoints_dir": wsl[r"C:\Volt_X"] + "/checkpoints",
                     "data_sync_local_data_root": wsl[r"D:\VoltData"]}
    # The same settings the Vast.ai block writes for a Linux home.
    assert set(paths) == set(re.findall(r"(data_sync_local_\w+):", " ".join(vast_ai_commands())))


# The sandbox block: make emulator / emulator-stop, the key export it prints and a rent are run by test_sandbox.py;
# site.yml, harvest and teardown through inventories/emulator are make demo's steps, run by test_site.py.
SANDBOX_COMMANDS = {"make emulator", "make emulator-stop",
                    "export VAST_API_KEY=$(cat .emulator/controller/vast_api_key)"} | {
    ".venv/bin/ansible-playbook -i inventories/emulator %s" % playbook
    for playbook in ("site.yml", "playbooks/harvest.yml", "playbooks/teardown.yml")}


def user_campaign_commands():
    """The Sandbox section's installed-collection campaign, which test_user_controller.py runs as an unprivileged user."""
    block = re.search(r"<!-- user-campaign -->\s*```bash\n(.*?)^```", README, flags=re.M | re.S)
    assert block, "README.md lost its user-campaign block"
    return commands(block.group(1))


CAMPAIGNS = "Campaigns: several instances at once"


def campaign_commands():
    """The Campaigns section's commands, which test_campaign.py runs against the emulator."""
    return commands(code_blocks(section(CAMPAIGNS))[0])


def campaign_files():
    """{path: text} of the Campaigns section's example files, each YAML block named by its first comment."""
    files = {}
    for block in code_blocks(section(CAMPAIGNS), "yaml"):
        files[re.match(r"# ([\w./-]+?):?(\s|$)", block).group(1)] = block
    return files


def test_the_campaign_example_declares_each_instance_with_its_own_settings_before_any_is_rented(tmp_path):
    """The example files as a user would save them: ansible-inventory (no API key, so no instance yet) shows the
    three hosts in `campaign` with their own settings over the shared ones."""
    files = campaign_files()
    assert sorted(files) == ["campaign.vastai.yml", "group_vars/all.yml", "host_vars/volt-x-lr3e4.yml"]
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    env = dict(os.environ, PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""), ANSIBLE_NOCOLOR="1",
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".build"), HOME=str(tmp_path),
               XDG_CONFIG_HOME=str(tmp_path / "config"), VAST_API_KEY="", VOLTX_VASTAI_KNOWN_HOSTS_DIR="")
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-inventory"), "-i", "campaign.vastai.yml", "--list"],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout)
    labels = ["volt-x-lr1e4", "volt-x-lr3e4", "volt-x-lr1e3"]
    assert listed["campaign"]["hosts"] == labels and "training" not in listed
    hostvars = listed["_meta"]["hostvars"]
    # A value the inventory did not template is listed as {"__ansible_unsafe": value}.
    assert [hostvars[label]["vastai_instance_label"].get("__ansible_unsafe") for label in labels] == labels
    assert [hostvars[label]["campaign_budget_usd"] for label in labels] == [8, 8, 4]
    assert hostvars["volt-x-lr3e4"]["campaign_stages"][0]["lr"] == "3e-4"
    assert "campaign_stages" not in hostvars["volt-x-lr1e4"]
    with open(os.path.join(ROOT, "roles", "campaign", "meta", "argument_specs.yml")) as f:
        spec = yaml.safe_load(f)["argument_specs"]["main"]["options"]
    stages = {"campaign_stages": hostvars["volt-x-lr3e4"]["campaign_stages"]}
    result = ArgumentSpecValidator({"campaign_stages": spec["campaign_stages"]}).validate(stages)
    assert result.error_messages == []
    # The Campaigns commands run the step playbooks on that inventory.
    steps = ["voltx.vastai.site", "voltx.vastai.harvest", "voltx.vastai.teardown"]
    assert [c.split()[1] for c in campaign_commands()] == steps


def test_every_command_is_covered():
    """A command added to the README needs a test: each one is run here, in test_packaging.py, test_sandbox.py,
    test_site.py, test_campaign.py or test_user_controller.py, or is make's."""
    covered = (set(vast_ai_commands()) | {"make demo", "make test"} | set(controller_block()) | SANDBOX_COMMANDS
               | set(campaign_commands()) | set(user_campaign_commands()))
    for block in code_blocks(README):
        for command in commands(block):
            assert command in covered or command.startswith("ansible-doc"), command

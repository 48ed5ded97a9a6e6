"""The collection as a user gets it: built with ansible-galaxy, installed offline next to the `ansible` package's
collections (which must satisfy galaxy.yml's dependencies), documented by ansible-doc from the installed copy, and
driven the way the README's "Using it against Vast.ai" says, from a project directory outside the checkout.

No network. The campaign test rents on the emulator (a few minutes); the others take seconds.
"""

import ast
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile

import pytest
import yaml

from test_readme import vast_ai_commands
from test_site import LABEL, Site, wait_for_jobs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.dirname(sys.executable)
# The collections the `ansible` package installed into this venv (ansible.posix, community.general, ...).
SITE_COLLECTIONS = sysconfig.get_paths()["purelib"]

with open(os.path.join(ROOT, "galaxy.yml")) as f:
    GALAXY = yaml.safe_load(f)

# What the tarball may hold: the collection's own content (galaxy.yml's manifest directives), and nothing else.
ALLOWED = re.compile(r"^(MANIFEST\.json|FILES\.json|README\.md|CHANGELOG\.md|LICENSE|meta/runtime\.yml"
                     r"|changelogs/(changelog|config)\.yaml|plugins/.+\.py|roles/.+\.(yml|j2|py|sh|md)"
                     r"|playbooks/[^/]+\.yml|docs/[^/]+\.md)$")
ALLOWED_DIRS = re.compile(r"^(changelogs|docs|meta|plugins|roles|playbooks)(/.+)?$")
SHIPPED = ("MANIFEST.json", "FILES.json", "README.md", "CHANGELOG.md", "LICENSE", "changelogs/changelog.yaml",
           "meta/runtime.yml", "plugins/modules/instance.py", "plugins/module_utils/_endpoint.py",
           "plugins/inventory/vastai.py", "roles/build/tasks/main.yml", "playbooks/rent.yml")
# What `make demo` and `make emulator` leave in a checkout (tests/sandbox.py's .emulator/, demo.py's demo-output/), and
# what a user's run from the checkout writes beside its inventory; planted by lived_in_checkout.
PLANTED_API_KEY = "a" * 64
LEFT_BY_RUNS = {
    ".emulator/emulator.json": json.dumps({"url": "http://127.0.0.1:1", "api_key": PLANTED_API_KEY}),
    ".emulator/local/VoltData/data/code_training_combined.jsonl": "{}\n",
    ".emulator/known_hosts/1": "[127.0.0.1]:2222 ssh-ed25519 AAAA\n",
    "demo-output/volt-x-training/report/status.md": "# status\n",
    "demo-output/volt-x-training/checkpoints/codebook_code.bin": "codebook",
    "inventories/harvest/volt-x-training/campaign.json": "{}",
    "staging/VoltStaging.tar.zst": "archive",
    ".venv/pyvenv.cfg": "home = /usr/bin\n",
    "roles/build/tasks/main.yml.orig": "an editor's leftover\n",
}
SECRET = re.compile(br"-----BEGIN [A-Z ]*PRIVATE KEY-----|" + PLANTED_API_KEY.encode())
# FQCNs that need no entry in galaxy.yml's dependencies.
BUILTIN = ("ansible.builtin", "ansible.legacy", "%s.%s" % (GALAXY["namespace"], GALAXY["name"]))


def run(argv, tmp_path, collections_path=None):
    env = dict(os.environ, PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""),
               ANSIBLE_GALAXY_CACHE_DIR=str(tmp_path / "galaxy_cache"), ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"))
    env.pop("ANSIBLE_CONFIG", None)  # the checkout's ansible.cfg must not help the installed copy
    if collections_path is not None:
        env["ANSIBLE_COLLECTIONS_PATH"] = collections_path
    else:
        env.pop("ANSIBLE_COLLECTIONS_PATH", None)
    proc = subprocess.run(argv, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=120, check=False)
    output = "\n".join((proc.stdout, proc.stderr))
    assert proc.returncode == 0, "%s failed (%s):\n%s" % (" ".join(argv), proc.returncode, output)
    return proc


def build(source, out):
    run(["ansible-galaxy", "collection", "build", str(source), "--output-path", str(out)], out)
    built = glob.glob(str(out / "*.tar.gz"))
    assert [os.path.basename(p) for p in built] == ["%s-%s-%s.tar.gz" % (GALAXY["namespace"], GALAXY["name"],
                                                                         GALAXY["version"])]
    return built[0]


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    return build(ROOT, tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def lived_in_checkout(tmp_path_factory):
    """A copy of this checkout with what `make emulator`, `make demo` and a run leave in one, private key too."""
    checkout = tmp_path_factory.mktemp("checkout")
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if os.path.isfile(os.path.join(ROOT, name)):
            os.makedirs(os.path.dirname(str(checkout / name)), exist_ok=True)
            shutil.copy(os.path.join(ROOT, name), str(checkout / name))
    for name, text in LEFT_BY_RUNS.items():
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        (checkout / name).write_text(text)
    (checkout / ".emulator" / "ssh").mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(checkout / ".emulator/ssh/id_ed25519")],
                   check=True)
    return checkout


@pytest.fixture(scope="module")
def installed(tarball, tmp_path_factory):
    """The tarball installed offline; the dependency resolver may only use the venv's `ansible` collections."""
    target = tmp_path_factory.mktemp("installed")
    proc = run(["ansible-galaxy", "collection", "install", "--offline", "-p", str(target), tarball], target,
               collections_path=SITE_COLLECTIONS)
    return target, proc.stdout


def assert_only_the_collection(tarball):
    with tarfile.open(tarball) as tar:
        names = sorted(m.name for m in tar.getmembers())
        outside = [m.name for m in tar.getmembers() if not (ALLOWED_DIRS if m.isdir() else ALLOWED).match(m.name)]
        assert not outside, "galaxy.yml's manifest lets these into the tarball: %s" % outside
        secrets = [m.name for m in tar.getmembers() if m.isfile()
                   and SECRET.search(tar.extractfile(m).read())]
        assert not secrets, "the tarball ships a private key or an API key in %s" % secrets
    missing = [name for name in SHIPPED if name not in names]
    assert not missing, "the tarball lacks %s" % missing


def test_tarball_holds_only_the_collection(tarball):
    assert_only_the_collection(tarball)


def test_a_checkout_after_the_demo_and_the_emulator_ships_none_of_their_files(lived_in_checkout, tmp_path):
    assert (lived_in_checkout / ".emulator/ssh/id_ed25519").read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY")
    assert_only_the_collection(build(lived_in_checkout, tmp_path))


def test_manifest_declares_the_dependencies(tarball):
    with tarfile.open(tarball) as tar:
        manifest = json.load(tar.extractfile("MANIFEST.json"))["collection_info"]
    assert manifest["version"] == GALAXY["version"]
    assert manifest["dependencies"] == GALAXY["dependencies"]


def _used_collections():
    """Collections named by FQCN in the shipped roles and playbooks: task keywords, filters, tests, lookups."""
    patterns = (
        re.compile(r"^\s*(?:-\s+)?([a-z0-9_]+\.[a-z0-9_]+)\.[a-z0-9_]+:", re.M),           # - ns.coll.module:
        re.compile(r"\|\s*([a-z0-9_]+\.[a-z0-9_]+)\.[a-z0-9_]+"),                          # | ns.coll.filter
        re.compile(r"\bis\s+(?:not\s+)?([a-z0-9_]+\.[a-z0-9_]+)\.[a-z0-9_]+"),             # is ns.coll.test
        re.compile(r"\b(?:lookup|query|q)\(\s*['\"]([a-z0-9_]+\.[a-z0-9_]+)\.[a-z0-9_]+"),  # lookup('ns.coll.x'
    )
    used = {}
    for path in glob.glob(os.path.join(ROOT, "roles", "**", "*.y*ml"), recursive=True) + \
            glob.glob(os.path.join(ROOT, "roles", "**", "*.j2"), recursive=True) + \
            glob.glob(os.path.join(ROOT, "playbooks", "*.y*ml")):
        with open(path) as f:
            text = f.read()
        for pattern in patterns:
            for name in pattern.findall(text):
                used.setdefault(name, set()).add(os.path.relpath(path, ROOT))
    return dict((name, paths) for name, paths in used.items() if name not in BUILTIN)


def test_every_used_collection_is_a_dependency():
    used = _used_collections()
    assert "ansible.posix" in used  # roles/build synchronizes the local source; proves the scan sees FQCNs
    undeclared = dict((name, sorted(paths)) for name, paths in used.items() if name not in GALAXY["dependencies"])
    assert not undeclared, "used but not in galaxy.yml dependencies: %s" % undeclared


def test_plugins_version_added_is_the_collection_version():
    for path in glob.glob(os.path.join(ROOT, "plugins", "*", "*.py")):
        # An action plugin is documented by the module of its name.
        if any("/%s/" % kind in path for kind in ("module_utils", "doc_fragments", "action")) \
                or path.endswith("__init__.py"):
            continue
        with open(path) as f:
            tree = ast.parse(f.read())
        docs = [node.value.value for node in tree.body if isinstance(node, ast.Assign)
                and any(getattr(t, "id", None) == "DOCUMENTATION" for t in node.targets)]
        assert docs, "%s has no DOCUMENTATION" % path
        assert str(yaml.safe_load(docs[0]).get("version_added")) == GALAXY["version"], path


def test_offline_install_resolves_dependencies_from_the_ansible_package(installed):
    target, stdout = installed
    assert os.path.isfile(os.path.join(str(target), "ansible_collections", "voltx", "vastai", "MANIFEST.json"))
    for name in GALAXY["dependencies"]:
        # Found in the venv, within galaxy.yml's range (the resolver fails the install otherwise).
        assert re.search(r"'%s:[0-9.]+' is already installed" % re.escape(name), stdout), stdout


@pytest.mark.parametrize("plugin_type, name", [("module", "voltx.vastai.instance"),
                                               ("inventory", "voltx.vastai.vastai")])
def test_ansible_doc_renders_from_the_installed_copy(installed, tmp_path, plugin_type, name):
    target, dummy = installed
    proc = run(["ansible-doc", "-t", plugin_type, name], tmp_path,
               collections_path=os.pathsep.join([str(target), SITE_COLLECTIONS]))
    assert os.path.join(str(target), "ansible_collections", "voltx", "vastai") in proc.stdout
    assert "Vast.ai" in proc.stdout and "OPTIONS" in proc.stdout
    proc = run(["ansible-doc", "--json", "-t", plugin_type, name], tmp_path,
               collections_path=os.pathsep.join([str(target), SITE_COLLECTIONS]))
    doc = json.loads(proc.stdout)[name]["doc"]
    assert (doc["collection"], doc["version_added"]) == ("voltx.vastai", GALAXY["version"])


def test_changelog_fragments_lint():
    proc = subprocess.run([os.path.join(VENV_BIN, "antsibull-changelog"), "lint"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def test_the_readme_campaign_runs_from_the_installed_tarball_in_a_directory_of_its_own(
        tarball, emulator, ssh_keypair, tmp_path):
    """The README's Vast.ai lines, verbatim, from an empty project directory outside the checkout (no ansible.cfg, no
    inventories/ of this checkout), against the emulator: the results land in that directory."""
    emulator.reset()
    site = Site(tmp_path, emulator, ssh_keypair)  # the fixture Volt-X and the guide's local files, generated
    # The user's home as the README's set-up lines see it: the guide's files in ~/Volt_X and ~/VoltData, and the
    # collection installed to ~/.ansible/collections. (The playbooks run with the real HOME: Ansible's async jobs on
    # the controller live under it.)
    home = tmp_path / "local"
    project = tmp_path / "my-campaign"
    project.mkdir()
    assert not str(project).startswith(ROOT + os.sep)
    shutil.copy(tarball, str(project))
    installed = home / ".ansible" / "collections" / "ansible_collections" / "voltx" / "vastai"
    env = dict(os.environ, PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""), ANSIBLE_NOCOLOR="1",
               ANSIBLE_COLLECTIONS_PATH=str(home / ".ansible" / "collections"), ANSIBLE_PRIVATE_KEY_FILE=site.private_key,
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"), VAST_API_URL=emulator.url,
               VAST_API_KEY=emulator.api_key, VOLTX_VASTAI_KNOWN_HOSTS_DIR=str(tmp_path / "known_hosts"))
    for name in ("ANSIBLE_CONFIG", "XDG_CONFIG_HOME"):
        env.pop(name, None)  # nothing of this checkout's set-up helps the installed copy

    def shell(script, **overrides):
        run_env = dict((k, v) for k, v in dict(env, **overrides).items() if v is not None)
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=str(project), env=run_env,
                              capture_output=True, text=True, timeout=1200, check=False)
        with open(str(tmp_path / "ansible.log"), "a") as log:
            log.write("$ %s\n%s%s\n" % (script, proc.stdout, proc.stderr))
        tail = proc.stdout[-6000:] + proc.stderr[-3000:]
        assert proc.returncode == 0, "%s failed (%s):\n%s" % (script, proc.returncode, tail)
        return proc.stdout

    lines = vast_ai_commands()
    setup = lines[:next(i for i, line in enumerate(lines) if line.startswith("ansible-playbook"))]
    playbook = dict((line.split()[1].rsplit(".", 1)[1], line) for line in lines[len(setup):])
    assert sorted(playbook) == ["harvest", "site", "teardown"], lines
    assert lines[0] == "ansible-galaxy collection install %s" % os.path.basename(tarball)
    assert "export VAST_API_KEY=..." in setup  # the key comes from this environment instead of a file
    shell("\n".join(line for line in setup if not line.startswith("export VAST_API_KEY=")), HOME=str(home),
          ANSIBLE_COLLECTIONS_PATH=None)
    assert (installed / "MANIFEST.json").is_file()

    # The emulator's stand-ins for what the real service and a real Volt-X would need (a local source, the
    # distribution's Rust, a tiny training), after the user's own settings the README wrote.
    with open(site.vars_file) as f:
        emulator_settings = json.load(f)
    for user_setting in ("data_sync_local_checkpoints_dir", "data_sync_local_data_root", "harvest_dest"):
        emulator_settings.pop(user_setting)
    with open(str(project / "group_vars" / "all.yml"), "a") as f:
        f.write(yaml.safe_dump(emulator_settings))

    first = shell(playbook["site"])
    assert "tmux attach -t training" in first and "ansible-playbook voltx.vastai.monitor" in first
    (instance,) = [i for i in emulator.state()["instances"] if not i.get("destroyed")]
    results = project / "harvest" / LABEL

    # Step 5 and step 7, the playbooks the README's table names, between the training and the harvest.
    inventory = "-i inventory.vastai.yml"
    secured = shell("ansible-playbook voltx.vastai.codebook %s -e harvest_codebook_wait_timeout=300" % inventory)
    assert "Codebook secured" in secured
    assert (results / "checkpoints" / "codebook_code.bin").stat().st_size > 0
    shell("ansible-playbook voltx.vastai.monitor %s" % inventory)
    status = json.loads((results / "report" / "status.json").read_text())
    assert status["jobs"]["phase03"]["exit_status"] == 0 and status["cost"]["spent_usd"] > 0
    assert (results / "report" / "loss.png").is_file()
    assert not list(results.rglob("*.safetensors")), "the codebook and monitor playbooks pull no checkpoint"

    wait_for_jobs(emulator, instance["id"], site.private_key, str(tmp_path / "known_hosts"))
    shell(playbook["harvest"])
    shell(playbook["teardown"])
    assert emulator.containers() == []
    for name in ("codebook_code.bin", "scaled_vfn_stage1.safetensors", "scaled_vfn_stage2.safetensors",
                 "scaled_vfn.safetensors"):
        assert (results / "checkpoints" / name).stat().st_size > 0
    assert not list(installed.rglob(LABEL)), "results must never land inside the installed collection"

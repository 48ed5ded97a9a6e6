"""The controller as its users run it: an unprivileged user with its own HOME (no sudo, not in the docker group), its
own venv from requirements.lock, the collection installed from the tarball into its own project directory, and the
README's emulator campaign run as written. Only the emulator (`make emulator`, tests/sandbox.py) is root's.

Takes a few minutes: the user's venv is made once per machine (kept between runs while the lock is unchanged).
"""

import glob
import grp
import hashlib
import json
import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import tempfile

import pytest

from vast_emulator.containers import Docker, state_dir_hash
from vast_emulator.testing import EmulatorHandle

from test_readme import controller_block, user_campaign_commands
from test_site import LABEL, wait_for_jobs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import sandbox  # noqa: E402  (tests/ is not a package)

USER = "voltx-user"
HOME = "/home/" + USER
VENV = HOME + "/.venvs/voltx"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="makes a user account: runs as root (as make test does)")


def as_user(script, cwd=HOME, timeout=1200, check=True):
    """`script` in bash as the user, with the environment a login gives it (nothing of this process's)."""
    env = {"HOME": HOME, "USER": USER, "LOGNAME": USER, "LANG": "C.UTF-8", "ANSIBLE_NOCOLOR": "1",
           "PATH": "%s/bin:/usr/local/bin:/usr/bin:/bin" % VENV}
    proc = subprocess.run(["setpriv", "--reuid", USER, "--regid", USER, "--init-groups", "--",
                           "bash", "-euo", "pipefail", "-c", script],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if check:
        assert proc.returncode == 0, "as %s: %s\nexited %s:\n%s\n%s" % (
            USER, script, proc.returncode, proc.stdout[-8000:], proc.stderr[-4000:])
    return proc


def _lock_digest():
    with open(os.path.join(ROOT, "requirements.lock"), "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()[:12]


@pytest.fixture(scope="session")
def controller_user():
    """The user, its venv (Debian's python3, the README's packages at the lock's versions) and an SSH key."""
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--home-dir", HOME, "--shell", "/bin/bash", USER], check=True)
    groups = [g.gr_name for g in grp.getgrall() if USER in g.gr_mem]
    assert not set(groups) & {"docker", "sudo", "wheel", "root"}, groups
    # What the README's "The controller" section installs, at the lock file's versions.
    (pip,) = [c for c in controller_block() if "pip install" in c]
    packages = pip.split("pip install", 1)[1].split()
    stamp = "%s/.lock-%s" % (VENV, _lock_digest())
    if not os.path.exists(stamp):
        shutil.copy(os.path.join(ROOT, "requirements.lock"), HOME + "/requirements.lock")
        os.chown(HOME + "/requirements.lock", pwd.getpwnam(USER).pw_uid, pwd.getpwnam(USER).pw_gid)
        as_user("rm -rf %s && /usr/bin/python3 -m venv %s && %s/bin/pip install -q --disable-pip-version-check "
                "-c ~/requirements.lock %s && touch %s" % (VENV, VENV, VENV, " ".join(packages), stamp))
    # Ansible Galaxy is out of reach here: the collection's one dependency is put where `ansible-galaxy collection
    # install ansible.posix` would have put it, from the `ansible` package of this checkout's venv.
    posix = os.path.join(sysconfig.get_paths()["purelib"], "ansible_collections", "ansible", "posix")
    target = HOME + "/.ansible/collections/ansible_collections/ansible/posix"
    if not os.path.isdir(target):
        shutil.copytree(posix, target, ignore=shutil.ignore_patterns("__pycache__"))
        subprocess.run(["chown", "-R", "%s:%s" % (USER, USER), HOME + "/.ansible"], check=True)
    as_user("test -f ~/.ssh/id_ed25519 || ssh-keygen -q -t ed25519 -N '' -f ~/.ssh/id_ed25519")
    return USER


@pytest.fixture
def user_emulator(test_image):
    """`make emulator`, as root, into a directory every user can reach (a checkout under /root is not)."""
    directory = tempfile.mkdtemp(prefix="voltx-user-emulator-")
    try:
        url = sandbox.start(directory, image=test_image)
        with open(os.path.join(directory, "emulator.json")) as handle:
            api_key = json.load(handle)["api_key"]
        yield EmulatorHandle(url, api_key, None, Docker(None, state_dir_hash(directory)), directory)
    finally:
        left = sandbox.stop(directory)
        shutil.rmtree(directory, ignore_errors=True)
        assert not left, "containers left behind: %s" % left


def test_the_readme_emulator_campaign_runs_as_an_unprivileged_user_from_the_installed_tarball(
        controller_user, user_emulator):
    lines = user_campaign_commands()
    assert lines[0].startswith("export VOLTX_EMULATOR=")
    controller = os.path.join(user_emulator.state_dir, "controller")
    setup = ["export VOLTX_EMULATOR=%s" % controller] + lines[1:]
    project = HOME + "/emulator-campaign"
    shutil.rmtree(project, ignore_errors=True)
    for earlier in glob.glob(HOME + "/.local/state/voltx-vastai/emulator-*"):
        shutil.rmtree(earlier)  # pins of an earlier run's emulator, whose instance ids this one gives again
    first = [i for i, line in enumerate(setup) if line.startswith("ansible-playbook")][0]
    playbooks = setup[first:]
    assert [line.split()[1] for line in playbooks] == [
        "voltx.vastai.site", "voltx.vastai.codebook", "voltx.vastai.monitor", "voltx.vastai.harvest",
        "voltx.vastai.teardown"]

    def run(line):
        return as_user("\n".join(setup[:first] + [line]), cwd=HOME).stdout

    run("ansible-galaxy collection list voltx.vastai")
    installed = project + "/collections/ansible_collections/voltx/vastai"
    assert os.path.isfile(installed + "/MANIFEST.json")
    assert pwd.getpwuid(os.stat(installed).st_uid).pw_name == USER

    site = run(playbooks[0])
    assert "tmux attach -t training" in site
    (instance,) = [i for i in user_emulator.state()["instances"] if not i.get("destroyed")]
    assert "Archives in %s/staging" % project in site
    results = "%s/harvest/%s" % (project, LABEL)
    assert "Codebook secured" in run(playbooks[1])
    run(playbooks[2])
    with open(results + "/report/status.json") as handle:
        assert json.load(handle)["jobs"]["phase03"]["exit_status"] == 0
    (pins,) = glob.glob(HOME + "/.local/state/voltx-vastai/emulator-*/known_hosts")
    wait_for_jobs(user_emulator, instance["id"], HOME + "/.ssh/id_ed25519", pins)
    run(playbooks[3])
    run(playbooks[4])
    assert user_emulator.containers() == []
    for name in ("codebook_code.bin", "scaled_vfn.safetensors"):
        path = "%s/checkpoints/%s" % (results, name)
        assert os.path.getsize(path) > 0 and pwd.getpwuid(os.stat(path).st_uid).pw_name == USER
    assert os.stat(results).st_mode & 0o077 == 0, "results are private to their user"

"""Fixtures that run real ansible-playbook / ansible-inventory (through ansible-runner) against the emulator."""

import json
import os
import subprocess
import sys

import ansible_runner
import pytest

from vast_emulator.testing import running_emulator

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.dirname(sys.executable)
# ansible-runner looks its executables up on this process's PATH.
os.environ["PATH"] = VENV_BIN + os.pathsep + os.environ.get("PATH", "")


@pytest.fixture(scope="session")
def test_image():
    return subprocess.run(["bash", os.path.join(ROOT, "tests", "image", "build.sh")],
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="session")
def emulator(tmp_path_factory, test_image):
    with running_emulator(str(tmp_path_factory.mktemp("emulator")), image=test_image) as handle:
        yield handle


@pytest.fixture(scope="session")
def ssh_keypair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ssh")
    private = folder / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "voltx-test", "-f", str(private)], check=True)
    return str(private), (folder / "id_ed25519.pub").read_text().strip()


@pytest.fixture(scope="session")
def vast_config_home(tmp_path_factory, emulator):
    """An XDG config home holding the key where the vastai CLI keeps it, so no runner file carries the key."""
    home = tmp_path_factory.mktemp("xdg")
    (home / "vastai").mkdir()
    key_file = home / "vastai" / "vast_api_key"
    key_file.write_text(emulator.api_key + "\n")
    key_file.chmod(0o600)
    return str(home)


class Ansible:
    """Runs playbooks, ad-hoc modules and ansible-inventory the way a user would, and keeps what they wrote."""

    def __init__(self, workdir, emulator, config_home, ssh_private_key):
        self.workdir = workdir
        self.emulator = emulator
        self.envvars = {
            "PATH": VENV_BIN + os.pathsep + os.environ.get("PATH", ""),
            "ANSIBLE_COLLECTIONS_PATH": os.path.join(ROOT, ".build"),
            "ANSIBLE_PRIVATE_KEY_FILE": ssh_private_key,
            "ANSIBLE_PIPELINING": "True",
            "ANSIBLE_NOCOLOR": "1",
            "VAST_API_URL": emulator.url,
            "XDG_CONFIG_HOME": config_home,
            # A key in the environment would shadow the key file this fixture wrote.
            "VAST_API_KEY": "",
            # The inventory pins each instance's host key here (never in the user's ~/.local/state).
            "VOLTX_VASTAI_KNOWN_HOSTS_DIR": str(workdir / "known_hosts"),
            "VOLTX_VASTAI_BLOCKLIST": str(workdir / "blocklist.json"),
        }
        self.localhost = "localhost ansible_connection=local ansible_python_interpreter=%s" % sys.executable
        self.runs = []

    def playbook(self, tasks, check=False, extravars=None, play_vars=None, verbosity=0):
        """Runs one localhost play; returns (runner, {task name: result})."""
        play = [{"name": "Test play", "hosts": "localhost", "gather_facts": False,
                 "vars": play_vars or {}, "tasks": tasks}]
        project = self.workdir / ("run%d" % len(self.runs)) / "project"
        project.mkdir(parents=True)
        (project / "test.yml").write_text(json.dumps(play, indent=1))
        cmdline = "--check" if check else None
        runner = ansible_runner.run(private_data_dir=str(project.parent), playbook="test.yml",
                                    inventory=self.localhost, envvars=self.envvars,
                                    extravars=extravars or {}, cmdline=cmdline, verbosity=verbosity,
                                    quiet=True)
        self.runs.append(runner)
        return runner, task_results(runner)

    def adhoc(self, inventory_file, pattern, module, module_args=""):
        private = self.workdir / ("run%d" % len(self.runs))
        private.mkdir(parents=True)
        runner = ansible_runner.run(private_data_dir=str(private), host_pattern=pattern, module=module,
                                    module_args=module_args, inventory=str(inventory_file),
                                    envvars=self.envvars, quiet=True)
        self.runs.append(runner)
        return runner

    def inventory(self, inventory_file):
        out, err = ansible_runner.get_inventory(action="list", inventories=[str(inventory_file)],
                                                response_format="json", envvars=self.envvars, quiet=True)
        self.runs.append(out)
        return out, err

    def everything_written(self):
        """Every byte the runs printed or left on disk, for secret scans."""
        chunks = []
        for path, _dirs, files in os.walk(self.workdir):
            for name in files:
                with open(os.path.join(path, name), "rb") as handle:
                    chunks.append(handle.read())
        for run in self.runs:
            stdout = getattr(run, "stdout", None)
            if stdout is not None:
                chunks.append(stdout.read().encode())
            elif isinstance(run, (str, dict)):
                chunks.append(json.dumps(run).encode() if isinstance(run, dict) else run.encode())
        return b"\n".join(chunks)


def task_results(runner):
    results = {}
    for event in runner.events:
        data = event.get("event_data", {})
        if event.get("event") in ("runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable"):
            result = dict(data.get("res", {}))
            result["_event"] = event["event"]
            results[data.get("task")] = result
    return results


@pytest.fixture
def ansible(tmp_path, emulator, vast_config_home, ssh_keypair):
    emulator.reset()
    workdir = tmp_path / "ansible"
    workdir.mkdir()
    yield Ansible(workdir, emulator, vast_config_home, ssh_keypair[0])
    emulator.reset()

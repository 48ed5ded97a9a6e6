"""running_emulator(): the emulator as a subprocess for tests, with a handle to its control API."""

import contextlib
import json
import os
import selectors
import subprocess
import sys
import time
import urllib.request

from .containers import Docker, state_dir_hash

EMULATOR_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tests/emulator
REPO_ROOT = os.path.dirname(os.path.dirname(EMULATOR_ROOT))
BUILD_SCRIPT = os.path.join(REPO_ROOT, "tests", "image", "build.sh")


class EmulatorHandle:
    def __init__(self, url, api_key, process, docker, state_dir):
        self.url = url
        self.state_dir = state_dir
        self.api_key = api_key
        self.process = process
        self._docker = docker

    def _control(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + "/_emulator/" + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)

    def set_faults(self, **faults):
        """e.g. set_faults(rate_limit=2, offer_taken=[24513378], overprice={"count": 1, "factor": 1.5})."""
        return self._control("POST", "faults", faults)

    def state(self):
        return self._control("GET", "state")

    def preempt(self, instance_id, kind="stopped"):
        """kind "stopped" (outbid: container stopped, disk kept) or "host_lost" (container and disk gone)."""
        return self._control("POST", "preempt/%d" % instance_id, {"kind": kind})

    def reset(self):
        return self._control("POST", "reset", {})

    def containers(self):
        """Names of the containers (running or not) this emulator started."""
        return self._docker.labelled()


def build_test_image():
    return subprocess.run(["bash", BUILD_SCRIPT], check=True, capture_output=True, text=True).stdout.strip()


def _read_ready_line(process, timeout):
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    if not selector.select(timeout):
        raise RuntimeError("vast_emulator did not report ready within %ss" % timeout)
    line = process.stdout.readline()
    if not line:
        raise RuntimeError("vast_emulator exited with %s before it was ready" % process.wait())
    return json.loads(line)


@contextlib.contextmanager
def running_emulator(state_dir, image=None, api_key=None, catalog=None, missing_images=None, ready_timeout=30):
    """Starts the emulator; on exit stops it and force-removes every container carrying its label.

    Its stderr goes to STATE_DIR/emulator.log.
    """
    os.makedirs(state_dir, exist_ok=True)
    image = image or build_test_image()
    command = [sys.executable, "-m", "vast_emulator", "--host", "127.0.0.1", "--port", "0",
               "--state-dir", state_dir, "--image", image]
    if catalog:
        command += ["--catalog", catalog]
    for image in missing_images or ():
        command += ["--missing-image", image]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [EMULATOR_ROOT, os.environ.get("PYTHONPATH")])))
    env.pop("VAST_EMULATOR_API_KEY", None)
    if api_key:
        env["VAST_EMULATOR_API_KEY"] = api_key  # the environment, unlike argv, is not visible in `ps`
    docker = Docker(image, state_dir_hash(state_dir))
    with open(os.path.join(state_dir, "emulator.log"), "ab") as log:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, env=env, text=True)
    try:
        ready = _read_ready_line(process, ready_timeout)
        yield EmulatorHandle(ready["url"], ready["api_key"], process, docker, state_dir)
    finally:
        _stop(process)
        process.stdout.close()
        docker.sweep()


def _stop(process):
    if process.poll() is None:
        process.terminate()
        deadline = time.time() + 30
        while process.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        if process.poll() is None:
            process.kill()
            process.wait()

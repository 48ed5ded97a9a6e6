"""The docker CLI calls that turn a rented instance into a real container (no docker SDK needed)."""

import hashlib
import io
import os
import socket
import subprocess
import tarfile

LABEL = "voltx.emulator"


def state_dir_hash(state_dir):
    """The label value that marks every container started for one state directory."""
    return hashlib.sha256(os.path.abspath(state_dir).encode()).hexdigest()[:12]


class DockerError(RuntimeError):
    pass


class Docker:
    def __init__(self, image, label_value):
        self.image = image
        self.label_value = label_value

    def container_name(self, instance_id):
        return "vastemu-%d-%s" % (instance_id, self.label_value)

    def create(self, name, env, memory_mb=None, secret_env=None):
        """Creates (does not start) the container; sshd in it listens on a random 127.0.0.1 port."""
        args = ["create", "--name", name, "--label", "%s=%s" % (LABEL, self.label_value),
                "-p", "127.0.0.1::22"]
        if memory_mb:
            args += ["--memory", "%dm" % memory_mb]
        for key, value in env.items():
            args += ["-e", "%s=%s" % (key, value)]
        # -e NAME takes the value from the docker CLI's environment: a secret stays out of `ps`.
        secret_env = secret_env or {}
        for key in secret_env:
            args += ["-e", key]
        self._run(*args, self.image, env=dict(os.environ, **secret_env) if secret_env else None)

    def put_file(self, name, path, text):
        """Writes one file into a container, running or not, through a tar stream on stdin."""
        data = text.encode()
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            info = tarfile.TarInfo(os.path.basename(path))
            info.size = len(data)
            info.mode = 0o755
            archive.addfile(info, io.BytesIO(data))
        self._run("cp", "-", "%s:%s" % (name, os.path.dirname(path)), stdin=buffer.getvalue())

    def start(self, name):
        self._run("start", name)

    def stop(self, name):
        self._run("stop", "-t", "2", name)

    def kill(self, name):
        self._run("kill", name, check=False)

    def remove(self, name):
        self._run("rm", "-f", "-v", name, check=False)

    def ssh_port(self, name):
        """Host port docker mapped to the container's 22 (it changes on every start)."""
        out = self._run("port", name, "22/tcp")
        return int(out.split()[0].rsplit(":", 1)[1])

    def is_running(self, name):
        out = self._run("inspect", "-f", "{{.State.Running}}", name, check=False)
        return out.strip() == "true"

    def append_authorized_keys(self, name, keys):
        """Adds keys to root's authorized_keys inside a running container, skipping ones already there."""
        script = ('mkdir -p /root/.ssh && touch /root/.ssh/authorized_keys && '
                  'while IFS= read -r k; do grep -qxF "$k" /root/.ssh/authorized_keys '
                  '|| printf "%s\\n" "$k" >> /root/.ssh/authorized_keys; done; '
                  'chmod 700 /root/.ssh; chmod 600 /root/.ssh/authorized_keys')
        self._run("exec", "-i", name, "sh", "-c", script, stdin=("\n".join(keys) + "\n").encode())

    def labelled(self):
        """Names of every container (running or not) carrying this emulator's label."""
        out = self._run("ps", "-a", "--filter", "label=%s=%s" % (LABEL, self.label_value),
                        "--format", "{{.Names}}", check=False)
        return out.split()

    def sweep(self):
        names = self.labelled()
        if names:
            self._run("rm", "-f", "-v", *names, check=False)

    @staticmethod
    def _run(*args, stdin=None, check=True, env=None):
        result = subprocess.run(["docker", *args], input=stdin, capture_output=True, timeout=120, check=False,
                                env=env)
        if check and result.returncode != 0:
            raise DockerError(result.stderr.decode(errors="replace").strip() or "docker %s failed" % args[0])
        return result.stdout.decode(errors="replace")


def ssh_banner_ready(port, timeout=1.0):
    """True once sshd answers on the port with its 'SSH-' banner."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
            conn.settimeout(timeout)
            return conn.recv(64).startswith(b"SSH-")
    except OSError:
        return False

"""`make demo`: the whole quick-start guide on the built-in Vast.ai emulator.

The real playbooks against the emulator inventory (inventories/emulator), with generated data and the fixture
Volt-X: pre-flight, rent, site.yml (uploads overlapped with the toolchain and the build, verify, both jobs in tmux),
the codebook secured as soon as it exists, monitoring while the curriculum runs, the final harvest and a verified
teardown. Ends with a summary: the offer and its price, the billable preparation time, the training time, the money
spent (the emulator's ledger), where the results are (demo-output/, kept) and that no instance is left.

The steps are methods of Demo, so tests/integration/test_site.py drives the same campaign step by step.
"""

import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "tests", "emulator"))

import sandbox  # noqa: E402  (path set just above)
from vast_emulator.testing import running_emulator  # noqa: E402

INVENTORY = "inventories/emulator"
LABEL = "volt-x-training"  # the inventory plugin's instance_label default
OUTPUT = os.path.join(ROOT, "demo-output")


def read_layout():
    """The campaign's shared layout, rendered from the one place that defines it (roles/campaign/defaults)."""
    import jinja2  # pylint: disable=import-outside-toplevel
    import yaml  # pylint: disable=import-outside-toplevel

    with open(os.path.join(ROOT, "roles", "campaign", "defaults", "main.yml")) as handle:
        defaults = yaml.safe_load(handle)
    return {name: jinja2.Template(value).render(defaults) if isinstance(value, str) else value
            for name, value in defaults.items()}


def parse_utc(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()


def human_seconds(seconds):
    minutes, seconds = divmod(int(round(seconds)), 60)
    return "%d min %02d s" % (minutes, seconds) if minutes else "%d s" % seconds


class Demo:
    """One campaign on an emulator through the emulator inventory; each guide step is a method."""

    def __init__(self, emulator, emulator_dir, output=OUTPUT, extra_vars=None, echo=True, log=None):
        self.emulator = emulator
        self.emulator_dir = sandbox.prepare(emulator_dir)
        self.harvest = os.path.join(output, LABEL)
        self.extra_vars = dict(extra_vars or {})
        if output != OUTPUT:
            self.extra_vars.setdefault("harvest_dest", self.harvest)
        self.echo = echo
        self.log = log or os.path.join(output, "demo.log")
        os.makedirs(output, exist_ok=True)
        self.layout = read_layout()
        self.env = dict(os.environ,
                        PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
                        ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".build"),
                        ANSIBLE_NOCOLOR="1", ANSIBLE_DISPLAY_SKIPPED_HOSTS="false",
                        VOLTX_EMULATOR_DIR=self.emulator_dir)
        # The inventory names the emulator's URL; a user's real settings must not leak into the demo.
        for name in ("VAST_API_URL", "VOLTX_VASTAI_KNOWN_HOSTS_DIR", "ANSIBLE_PRIVATE_KEY_FILE"):
            self.env.pop(name, None)
        # The key as a user gives it (the modules and the inventory read it there): the emulator's, never the user's.
        self.env["VAST_API_KEY"] = emulator.api_key
        self.times = {}
        self.instance = None

    # -- running things ----------------------------------------------------------------------------------------

    def say(self, text):
        if self.echo:
            print(text, flush=True)
        with open(self.log, "a") as handle:
            handle.write(text + "\n")

    def play(self, title, *args, expect_rc=0):
        """ansible-playbook -i inventories/emulator ARGS, its output followed live; returns the output."""
        argv = ["ansible-playbook", "-i", INVENTORY, *args]
        if self.extra_vars:
            argv[3:3] = ["-e", json.dumps(self.extra_vars)]
        self.say("\n=== %s\n$ %s" % (title, " ".join(argv)))
        lines = []
        with subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) as process, open(self.log, "a") as log:
            for line in process.stdout:
                lines.append(line)
                log.write(line)
                if self.echo:
                    sys.stdout.write(line)
                    sys.stdout.flush()
        output = "".join(lines)
        if process.returncode != expect_rc:
            raise RuntimeError("%s exited with %s, expected %s; its output is in %s:\n%s"
                               % (" ".join(argv), process.returncode, expect_rc, self.log, output[-4000:]))
        return output

    def status(self):
        """The harvest's status report, or None before the first one."""
        try:
            with open(os.path.join(self.harvest, "report", "status.json")) as handle:
                return json.load(handle)
        except OSError:
            return None

    def harvested(self):
        """Paths the harvest verified on the controller (its manifest)."""
        try:
            with open(os.path.join(self.harvest, "manifest.json")) as handle:
                return {entry["path"] for entry in json.load(handle)["files"]}
        except OSError:
            return set()

    # -- the guide's steps ---------------------------------------------------------------------------------------

    def preflight(self):
        return self.play("Pre-flight: every setting, the SSH key, the local files packed", "playbooks/preflight.yml")

    def rent(self):
        output = self.play("Guide step 1: rent the cheapest offer that meets the guide's criteria", "playbooks/rent.yml")
        self.times["reachable"] = time.time()
        (self.instance,) = [i for i in self.emulator.state()["instances"]
                            if i.get("label") == LABEL and not i.get("destroyed")]
        return output

    def site(self, *args):
        output = self.play("Guide steps 2-4: uploads while the toolchain installs and Volt-X builds, verify, both "
                           "jobs in tmux (site.yml finds the instance rented above)", "site.yml", *args)
        self.times.setdefault("ready", time.time())
        return output

    def secure_codebook(self, timeout=900):
        """Guide step 5: pull the codebook as soon as Phase 0.3 wrote it, verified."""
        codebook = self.layout["campaign_codebook_output"]
        deadline = time.time() + timeout
        while codebook not in self.harvested():
            if time.time() > deadline:
                raise RuntimeError("no verified codebook after %s s; see %s" % (timeout, self.log))
            self.play("Guide step 5: secure the codebook once it exists", "playbooks/codebook.yml")
        self.say("The codebook is safe on the controller: %s" % os.path.join(self.harvest, codebook))

    def monitor(self, timeout=1800):
        """Guide step 7: status, loss, cost while the curriculum runs, until both jobs ended."""
        deadline = time.time() + timeout
        while True:
            self.play("Guide step 7: monitor the curriculum", "playbooks/monitor.yml")
            status = self.status()
            current = status["current"] or {}
            self.say("stage %s/%s %s, epoch %s/%s, loss %s; %s" % (
                current.get("stage"), current.get("of"), current.get("state"), current.get("epoch"),
                current.get("epochs"), current.get("latest_loss"),
                ", ".join("%s %s" % (name, job["state"]) for name, job in sorted(status["jobs"].items()))))
            jobs = status["jobs"].values()
            if jobs and not any(job["alive"] for job in jobs):
                if not status["curriculum_complete"] or any(job["exit_status"] != 0 for job in jobs):
                    raise RuntimeError("a job ended without finishing: %s" % status["jobs"])
                return status
            if time.time() > deadline:
                raise RuntimeError("the jobs still run after %s s" % timeout)

    def final_harvest(self):
        return self.play("Guide step 7: the final harvest, every artifact verified", "playbooks/harvest.yml")

    def teardown(self):
        return self.play("Guide step 8: destroy the instance, now that every final artifact is verified",
                         "playbooks/teardown.yml")

    # -- the summary -----------------------------------------------------------------------------------------------

    def training_seconds(self):
        """From the first stage's start to the curriculum's completion marker, as the harvested logs record them."""
        logs = os.path.join(self.harvest, self.layout["campaign_log_dir"])
        stages = self.layout["campaign_stages"]
        with open(os.path.join(logs, stages[0]["log"])) as handle:
            started = parse_utc(handle.readline().split(" started ", 1)[1].split()[0].rstrip(":"))
        with open(os.path.join(logs, self.layout["campaign_curriculum_job"] + ".exit")) as handle:
            finished = parse_utc(json.load(handle)["finished"])
        return finished - started

    def summary(self):
        state = self.emulator.state()
        bill = state["ledger"]["instances"][str(self.instance["id"])]
        left = [i["id"] for i in state["instances"] if not i.get("destroyed")]
        report = os.path.join(self.harvest, "report")
        return {
            "instance": self.instance["id"],
            "offer": "%s x%s, %s" % (self.instance["gpu_name"], self.instance["num_gpus"],
                                     self.instance.get("geolocation")),
            "dph": bill["dph_total"],
            "prep_seconds": self.times["ready"] - self.times["reachable"],
            "training_seconds": self.training_seconds(),
            "spent_usd": bill["cost"],
            "artifacts": os.path.join(self.harvest, self.layout["campaign_checkpoints_dir"]),
            "loss_plot": os.path.join(report, "loss.png"),
            "report": os.path.join(report, "status.md"),
            "instances_left": left,
            "containers_left": self.emulator.containers(),
        }

    def print_summary(self, summary):
        self.say("\n=== Summary\n"
                 "offer:          %(offer)s at $%(dph).4f/h (instance %(instance)s)\n"
                 "billable prep:  %(prep)s (instance reachable -> ready to train)\n"
                 "training:       %(training)s\n"
                 "money spent:    $%(spent_usd).4f (the emulator's ledger)\n"
                 "artifacts:      %(artifacts)s\n"
                 "loss plot:      %(loss_plot)s\n"
                 "report:         %(report)s\n"
                 "%(left)s" % dict(summary, prep=human_seconds(summary["prep_seconds"]),
                                   training=human_seconds(summary["training_seconds"]),
                                   left="no instance left" if not (summary["instances_left"]
                                                                   or summary["containers_left"])
                                   else "LEFT BEHIND: instances %s, containers %s" % (
                                       summary["instances_left"], summary["containers_left"])))

    def run(self):
        """The whole guide, in the order a person follows it."""
        self.preflight()
        self.rent()
        self.site()
        self.secure_codebook()
        self.monitor()
        self.final_harvest()
        self.teardown()
        return self.summary()


def main():
    shutil.rmtree(os.path.join(OUTPUT, LABEL), ignore_errors=True)  # the previous demo's results
    if os.path.exists(os.path.join(OUTPUT, "demo.log")):
        os.remove(os.path.join(OUTPUT, "demo.log"))
    with tempfile.TemporaryDirectory(prefix="voltx-demo-") as scratch:
        emulator_dir = os.path.join(scratch, "emulator")
        with running_emulator(emulator_dir, image=os.environ.get("VOLTX_TEST_IMAGE")) as emulator:
            demo = Demo(emulator, emulator_dir)
            demo.say("The Vast.ai emulator runs at %s; every rented instance is a container of the bare test image."
                     % emulator.url)
            summary = demo.run()
            demo.print_summary(summary)
        if summary["instances_left"] or summary["containers_left"]:
            sys.exit(1)


if __name__ == "__main__":
    main()

"""`make demo` as a user runs it: rent, ping through the inventory, destroy, nothing left behind."""

import os
import subprocess
import sys

from conftest import ROOT


def test_demo_rents_pings_destroys_and_leaves_no_container(test_image):
    env = dict(os.environ, VOLTX_TEST_IMAGE=test_image)
    env.pop("VAST_API_KEY", None)
    demo = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "demo.py")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    output = demo.stdout + demo.stderr
    assert demo.returncode == 0, output
    assert "volt-x-training | SUCCESS" in output and "pong" in output
    assert "containers left: 0" in output

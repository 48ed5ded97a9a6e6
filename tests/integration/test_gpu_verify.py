"""The guide's verify step checks the GPU model and CUDA version the campaign names once (vastai_gpu_name,
vastai_min_cuda), not settings of its own; run as playbooks/verify.yml runs it, against nvidia-smi and nvcc output
captured on an H100 (molecule/train_tmux/files: NVIDIA H100 80GB HBM3, driver CUDA 13.0, nvcc 13.0)."""

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CAPTURED = os.path.join(ROOT, "molecule", "train_tmux", "files")

# What playbooks/verify.yml does for the GPU, on a host whose nvidia-smi and nvcc are the stand-ins. The campaign
# role's bootstrap is off: this host is the controller, not a rented instance.
PLAY = """
- name: Verify the GPU
  hosts: gpu_host
  gather_facts: false
  vars:
    campaign_bootstrap: false
  tasks:
    - name: GPU visible, driver new enough, nvcc present
      ansible.builtin.include_role:
        name: voltx.vastai.train_tmux
        tasks_from: gpu_verify
      vars:
        train_tmux_gpu_nvidia_smi: "{{ stand_ins }}/nvidia-smi"
        train_tmux_gpu_nvcc: "{{ stand_ins }}/nvcc"
"""


def verify(tmp_path, host_vars="", *extra):
    stand_ins = tmp_path / "bin"
    stand_ins.mkdir()
    for name in ("nvidia-smi", "nvcc"):
        shutil.copy(os.path.join(CAPTURED, "fake-gpu.sh"), stand_ins / name)
        (stand_ins / name).chmod(0o755)
    for name in ("nvidia-smi-banner.txt", "nvidia-smi-query.txt", "nvcc-version.txt"):
        shutil.copy(os.path.join(CAPTURED, name), stand_ins / name)
    (tmp_path / "play.yml").write_text(PLAY)
    # The host's variables as an inventory gives them (the voltx.vastai.vastai inventory sets vastai_gpu_name to
    # the rented instance's GPU).
    (tmp_path / "hosts").write_text(
        "gpu_host ansible_connection=local ansible_python_interpreter=%s stand_ins=%s %s\n"
        % (sys.executable, stand_ins, host_vars))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".build"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"))
    run = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
                          "-i", str(tmp_path / "hosts"), str(tmp_path / "play.yml"), *extra],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    return run.returncode, run.stdout + run.stderr


def test_by_default_the_verify_step_wants_the_gpu_the_campaign_rents(tmp_path):
    rc, output = verify(tmp_path)
    assert rc == 2, output
    assert "needs 1 GPU(s) matching 'RTX 5090' (vastai_gpu_name), found 0 (NVIDIA H100 80GB HBM3)" in output


@pytest.mark.parametrize("where", ["inventory", "extra_vars"])
def test_the_gpu_named_in_one_place_is_the_one_the_verify_step_checks(tmp_path, where):
    rc, output = (verify(tmp_path, "vastai_gpu_name=H100") if where == "inventory"
                  else verify(tmp_path, "", "-e", "vastai_gpu_name=H100"))
    assert rc == 0, output
    assert "GPU OK: NVIDIA H100 80GB HBM3; driver 580.159.04 supports CUDA 13.0; nvcc 13.0." in output


def test_the_campaigns_minimum_cuda_is_the_one_the_verify_step_checks(tmp_path):
    rc, output = verify(tmp_path, "vastai_gpu_name=H100", "-e", "vastai_min_cuda=13.1")
    assert rc == 2, output
    assert "the driver supports CUDA 13.0, 13.1 (vastai_min_cuda) is needed" in output

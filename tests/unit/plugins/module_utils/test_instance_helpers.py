"""Pure instance/ssh-key helpers: module result, progress, offer choice, create body, keys."""

from __future__ import annotations

import pytest

from ansible_collections.voltx.vastai.plugins.module_utils._instance import (
    build_create_body,
    choose_next_offer,
    classify_progress,
    find_account_key,
    image_failed,
    image_reference_problem,
    key_identity,
    outcome_for,
    parse_public_key,
    probe_ssh,
    summarize_instance,
)

ED = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq0Ww3fTQv6Yz5mM2m8mZ2n5nLr4cX1bBq9Xk0n1J3x"


def test_summarize_instance():
    inst = {"id": "12", "label": "l", "actual_status": "Running", "dph_total": "0.19", "num_gpus": 1,
            "machine_id": 5, "gpu_name": "RTX 5090", "start_date": 1.5, "ssh_host": "h", "ssh_port": 2}
    out = summarize_instance(inst)
    assert out["id"] == 12 and out["status"] == "running" and out["dph_total"] == 0.19
    assert out["ssh_user"] == "root" and out["ssh_host"] == "h" and out["ssh_port"] == 2


RUNNING = {"actual_status": "running", "dph_total": 0.19}


@pytest.mark.parametrize("inst,now,ssh_ok,max_dph,expected", [
    (None, 0, False, None, "vanished"),
    (RUNNING, 10, True, 0.2, "ready"),
    (RUNNING, 10, False, 0.2, "pending"),
    (RUNNING, 10, True, 0.1, "over_price"),
    ({"actual_status": "exited"}, 10, False, None, "failed"),
    ({"actual_status": "offline"}, 10, False, None, "failed"),
    ({"actual_status": "loading"}, 10, False, None, "pending"),
    ({"actual_status": "loading", "status_msg": "Pulling image: 3f4ac1d2e8b7: Downloading"}, 10, False, None,
     "pending"),
    # A failed pull shows in status_msg while actual_status still says created: give the offer up at once.
    ({"actual_status": "created", "status_msg": "Error response from daemon: manifest for nvidia/cuda:9 not found: "
      "manifest unknown"}, 10, False, None, "failed"),
    ({"actual_status": None}, 10, False, None, "pending"),
    ({"actual_status": "loading"}, 600, False, None, "stuck"),
    ({"actual_status": "loading"}, 1000, False, None, "timeout"),
    (RUNNING, 650, False, None, "stuck"),
])
def test_classify_progress(inst, now, ssh_ok, max_dph, expected):
    assert classify_progress(inst, now, attempt_started=0, loading_timeout=600, deadline=1000, ssh_ok=ssh_ok,
                             max_dph=max_dph) == expected


def test_outcome_names():
    assert outcome_for("ready") == "rented"
    assert outcome_for("stuck") == "stuck_loading_destroyed"
    assert outcome_for("over_price") == "over_price_destroyed"


def test_choose_next_offer():
    ranked = [{"id": 3}, {"id": "1"}, {"id": None}, {"id": 2}]
    assert choose_next_offer(ranked, set())["id"] == 3
    assert choose_next_offer(ranked, {3})["id"] == "1"
    assert choose_next_offer(ranked, {3, 1})["id"] == 2
    assert choose_next_offer(ranked, {1, 2, 3}) is None


def test_build_create_body():
    body = build_create_body(image="img", disk_gb=250, label="lab", onstart="echo hi", env={"A": 1},
                             bid_price=None)
    assert body["runtype"] == "ssh_direc ssh_proxy"
    assert body["disk"] == 250.0 and body["label"] == "lab" and body["env"] == {"A": "1"}
    assert body["price"] is None and body["cancel_unavail"] is True and body["client_id"] == "me"
    assert build_create_body("i", 10, "l", runtype="ssh_proxy", bid_price=0.1)["price"] == 0.1
    assert build_create_body("i", 10, "l", runtype="ssh_proxy")["runtype"] == "ssh_proxy"


def test_parse_public_key():
    assert parse_public_key(ED + " me@laptop\n") == (ED.split()[0], ED.split()[1], "me@laptop")
    assert key_identity(ED + " a") == key_identity(ED + " b") == ED


@pytest.mark.parametrize("text,needle", [
    ("", "empty"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----", "PRIVATE"),
    ("rsa AAAA", "must start with"),
    ("ssh-ed25519", "no base64"),
    ("ssh-ed25519 not*base64", "base64"),
    (ED + "\n" + ED, "exactly one"),
])
def test_parse_public_key_errors(text, needle):
    with pytest.raises(ValueError) as err:
        parse_public_key(text)
    assert needle in str(err.value)


def test_find_account_key_ignores_comment():
    keys = [{"id": 1, "key": "ssh-rsa AAAA other"}, {"id": 2, "public_key": ED + " old-comment"}]
    assert find_account_key(keys, ED + " new-comment")["id"] == 2
    assert find_account_key(keys, "garbage") is None


class FakeSock:
    def __init__(self, chunks):
        self.chunks = list(chunks)
        self.closed = False

    def settimeout(self, _t):
        pass

    def recv(self, _n):
        return self.chunks.pop(0) if self.chunks else b""

    def close(self):
        self.closed = True


def test_probe_ssh_banner():
    sock = FakeSock([b"SSH-2.0-Open", b"SSH_9.6\r\n"])
    assert probe_ssh("h", 22, connect=lambda addr, t: sock) is True
    assert sock.closed
    assert probe_ssh("h", 22, connect=lambda addr, t: FakeSock([b"HTTP/1.1 400\r\n"])) is False
    assert probe_ssh("h", 22, connect=lambda addr, t: FakeSock([])) is False


def test_probe_ssh_refused():
    def refuse(addr, timeout):
        raise ConnectionRefusedError("no")
    assert probe_ssh("h", 22, connect=refuse) is False
    assert probe_ssh(None, 22) is False


@pytest.mark.parametrize("image", [
    "nvidia/cuda:12.8.0-devel-ubuntu22.04", "pytorch/pytorch", "vastai/base-image:@vastai-automatic-tag",
    "ghcr.io/org/team/img:v1.2_rc-3", "localhost:5000/x", "registry:5000/a/b", "Registry.Example.com/lower/case",
    "ubuntu@sha256:" + "ab" * 32, "a__b/c--d.e",
])
def test_image_references_docker_takes(image):
    assert image_reference_problem(image) is None


@pytest.mark.parametrize("image, problem", [
    ("", "is empty"),
    ("nvidia/cuda 12.8", "contains whitespace"),
    ("nvidia/CUDA:12.8.0", "upper case"),
    ("NVIDIA/cuda", "upper case"),
    ("nvidia/cuda:", "malformed tag"),
    ("nvidia/cuda:12:8", "malformed tag"),
    ("nvidia//cuda", "is not a docker image reference"),
    ("-nvidia/cuda", "is not a docker image reference"),
    ("ubuntu@sha256:abc", "is not a docker image reference"),
    ("a" * 256, "longer than"),
])
def test_image_references_docker_refuses(image, problem):
    assert problem in image_reference_problem(image)


def test_only_pull_errors_that_blame_the_image_count_as_image_failures():
    assert image_failed({"status_msg": "Error response from daemon: manifest for x:1 not found: manifest unknown"})
    assert image_failed({"status_msg": "Error response from daemon: pull access denied for nope, repository does "
                                       "not exist or may require 'docker login'"})
    assert not image_failed({"status_msg": "Error response from daemon: Get https://registry-1.docker.io/v2/: "
                                           "net/http: TLS handshake timeout"})
    assert not image_failed({"status_msg": None})

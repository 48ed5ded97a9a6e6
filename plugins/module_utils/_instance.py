# -*- coding: utf-8 -*-
# Copyright: (c) 2026, voltx engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Pure helpers for instances and SSH keys: the module result, progress classification,
offer choice, create body, public-key parsing. No Ansible and no HTTP here."""

from __future__ import annotations

import base64
import binascii
import re
import socket

from ._endpoint import SSH_USER, instance_status, public_ipaddr, ssh_endpoint, to_float, to_int

RUNTYPES = {
    "ssh_direct": "ssh_direc ssh_proxy",
    "ssh_proxy": "ssh_proxy",
    "ssh": "ssh",
}
ONSTART_MAX = 4048
# The labels this collection rents under. A label is an identity, a host name and a directory on the controller
# (harvest/<label>/), so it is kept to characters that mean nothing to Jinja2, a shell, a host pattern or a path.
LABEL_ALLOWED = ("1 to 64 letters, digits, '.', '_' or '-', starting with a letter or a digit, without '..' "
                 "(no whitespace, '/', '{{', '{%' or shell metacharacters such as '$(')")
_LABEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
DISK_MIN_GB = 8.0
# actual_status values that mean "this fresh instance will never come up".
FAILED_STATUSES = frozenset(["exited", "offline"])
KEY_PREFIXES = ("ssh-", "ecdsa-", "sk-")
# How Vast.ai's status_msg shows a container that will never start (a failed pull, a bad image or command),
# while actual_status still says created or loading (vast-api.md section 4).
LAUNCH_ERROR_MARKERS = ("error response from daemon", "manifest unknown", "oci runtime create failed",
                        "pull access denied")
# The pull errors that blame the image itself (it does not exist, or this name is not an image), not the host:
# renting the same image on another machine fails the same way.
IMAGE_ERROR_MARKERS = ("manifest unknown", "pull access denied", "repository does not exist",
                       "invalid reference format", "not found: manifest")
OUTCOME_IMAGE_FAILED = "image_pull_failed_destroyed"


def label_problem(label):
    """None when ``label`` is one this collection may rent under, else what is wrong with it (names LABEL_ALLOWED)."""
    if isinstance(label, str) and _LABEL_RE.match(label) and ".." not in label:
        return None
    return "%r is not a label this collection rents under: use %s" % (label, LABEL_ALLOWED)


# Docker's image reference grammar (distribution/reference): [host[:port]/]path[:tag][@digest], path lower case.
_HOST_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
# The first component is a registry only when it has a '.' or a port, or is localhost (docker's own split).
IMAGE_REFERENCE = re.compile(
    r"(?:(?:%s(?:\.%s)+|localhost)(?::[0-9]+)?/|%s:[0-9]+/)?%s(?:/%s)*(?::[\w][\w.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?"
    % (_HOST_PART, _HOST_PART, _HOST_PART, _PATH_PART, _PATH_PART))
# Vast.ai's own tag, which it resolves to the newest build (the CLI's example image uses it).
VAST_AUTOMATIC_TAG = ":@vastai-automatic-tag"
IMAGE_EXAMPLE = "nvidia/cuda:12.8.0-devel-ubuntu22.04"

# Outcomes recorded in the instance module's ``attempts`` list.
OUTCOME_RENTED = "rented"
OUTCOME_OFFER_GONE = "offer_gone"
OUTCOME_STUCK = "stuck_loading_destroyed"
OUTCOME_OVER_PRICE = "over_price_destroyed"
OUTCOME_FAILED = "failed_destroyed"
OUTCOME_VANISHED = "vanished"
OUTCOME_TIMEOUT = "wait_timeout_destroyed"
OUTCOME_RATE_LIMITED = "rate_limited"
OUTCOME_CREATE_UNCERTAIN = "create_failed_not_found"
OUTCOME_WOULD_RENT = "would_rent"


def summarize_instance(inst):
    """The ``instance`` dict the modules return."""
    if not isinstance(inst, dict):
        return None
    host, port, kind = ssh_endpoint(inst)
    return {
        "id": to_int(inst.get("id")),
        "label": inst.get("label"),
        "status": instance_status(inst),
        "intended_status": inst.get("intended_status"),
        "status_msg": inst.get("status_msg"),
        "ssh_host": host,
        "ssh_port": port,
        "ssh_kind": kind,
        "ssh_user": SSH_USER,
        "public_ipaddr": public_ipaddr(inst),
        "dph_total": to_float(inst.get("dph_total")),
        "gpu_name": inst.get("gpu_name"),
        "num_gpus": to_int(inst.get("num_gpus")),
        "machine_id": to_int(inst.get("machine_id")),
        "start_date": to_float(inst.get("start_date")),
        "image": inst.get("image_uuid"),
        "disk_gb": to_float(inst.get("disk_space")),
        "is_bid": inst.get("is_bid"),
    }


def over_price(inst, max_dph):
    """True when the instance's contract price is known and above ``max_dph``."""
    if max_dph is None or not isinstance(inst, dict):
        return False
    price = to_float(inst.get("dph_total"))
    return price is not None and price > float(max_dph) + 1e-9


def classify_progress(inst, now, attempt_started, loading_timeout, deadline, ssh_ok=False, max_dph=None):
    """What to do with a freshly rented instance at time ``now``.

    Returns one of: "ready" (running and SSH answers), "vanished", "over_price", "failed",
    "stuck" (per-attempt loading_timeout passed), "timeout" (total wait_timeout passed),
    "pending" (poll again).
    """
    if inst is None:
        return "vanished"
    if over_price(inst, max_dph):
        return "over_price"
    status = instance_status(inst)
    if status == "running" and ssh_ok:
        return "ready"
    if status in FAILED_STATUSES or launch_failed(inst):
        return "failed"
    if deadline is not None and now >= deadline:
        return "timeout"
    if loading_timeout is not None and now - attempt_started >= loading_timeout:
        return "stuck"
    return "pending"


def launch_failed(inst):
    """True when the status message says the container cannot start, whatever actual_status says."""
    message = str(inst.get("status_msg") or "").lower()
    return any(marker in message for marker in LAUNCH_ERROR_MARKERS)


def image_failed(inst):
    """True when the status message is a pull error that blames the image, not the machine."""
    message = str(inst.get("status_msg") or "").lower()
    return any(marker in message for marker in IMAGE_ERROR_MARKERS)


def image_reference_problem(image):
    """Why ``image`` is not a docker image reference (a phrase to follow "which"), or None when it is one."""
    if not isinstance(image, str) or not image.strip():
        return "is empty"
    if image != image.strip() or any(char.isspace() for char in image):
        return "contains whitespace"
    name = image[:-len(VAST_AUTOMATIC_TAG)] if image.endswith(VAST_AUTOMATIC_TAG) else image
    if len(name) > 255:
        return "is longer than docker's 255 characters"
    if IMAGE_REFERENCE.fullmatch(name):
        return None
    path = name.split("@", 1)[0]
    if path.rsplit("/", 1)[-1].count(":") > 1 or path.endswith(":"):
        return "has a malformed tag (one ':' then letters, digits, '_', '.' or '-')"
    first, _slash, rest = path.partition("/")
    repository = rest if rest and ("." in first or ":" in first or first == "localhost") else path
    if ":" in repository.rsplit("/", 1)[-1]:
        repository = repository.rsplit(":", 1)[0]
    if repository != repository.lower():
        return "has upper case letters in the repository name (docker allows only lower case there)"
    return "is not a docker image reference ([registry[:port]/]name[:tag][@digest])"


def choose_next_offer(ranked, tried):
    """First offer in ``ranked`` whose id is not in ``tried``; None when exhausted."""
    for offer in ranked:
        oid = to_int(offer.get("id")) if isinstance(offer, dict) else None
        if oid is not None and oid not in tried:
            return offer
    return None


def outcome_for(progress):
    return {
        "ready": OUTCOME_RENTED,
        "vanished": OUTCOME_VANISHED,
        "over_price": OUTCOME_OVER_PRICE,
        "failed": OUTCOME_FAILED,
        "stuck": OUTCOME_STUCK,
        "timeout": OUTCOME_TIMEOUT,
    }.get(progress)


def build_create_body(image, disk_gb, label, runtype="ssh_direct", onstart=None, env=None, bid_price=None,
                      cancel_unavail=True):
    """The ``PUT /asks/{id}/`` body, shaped like the CLI's."""
    return {
        "client_id": "me",
        "image": image,
        "env": dict((str(k), "" if v is None else str(v)) for k, v in (env or {}).items()),
        "price": float(bid_price) if bid_price is not None else None,
        "disk": float(disk_gb),
        "label": label,
        "extra": None,
        "onstart": onstart,
        "image_login": None,
        "python_utf8": False,
        "lang_utf8": False,
        "use_jupyter_lab": False,
        "jupyter_dir": None,
        "force": False,
        "cancel_unavail": bool(cancel_unavail),
        "template_hash_id": None,
        "user": None,
        "runtype": RUNTYPES.get(runtype, runtype),
    }


def probe_ssh(host, port, timeout=5.0, connect=socket.create_connection):
    """True when ``host:port`` accepts TCP and sends an ``SSH-`` banner within ``timeout``."""
    if not host or not port:
        return False
    try:
        sock = connect((host, int(port)), timeout)
    except (OSError, ValueError):
        return False
    try:
        sock.settimeout(timeout)
        data = b""
        while len(data) < 256 and b"\n" not in data:
            chunk = sock.recv(256)
            if not chunk:
                break
            data += chunk
        return data.startswith(b"SSH-")
    except (OSError, ValueError):
        return False
    finally:
        try:
            sock.close()
        except OSError:
            pass


# --------------------------------------------------------------------------------------------
# Public keys
# --------------------------------------------------------------------------------------------

def parse_public_key(text):
    """(type, base64 body, comment) of an OpenSSH public key line; ValueError when it is not one."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("must be a public key line such as 'ssh-ed25519 AAAA... comment', got an empty value")
    line = text.strip()
    if "PRIVATE KEY" in line:
        raise ValueError("looks like a PRIVATE key; pass the public key (the .pub file content)")
    lines = [ln for ln in line.splitlines() if ln.strip()]
    if len(lines) != 1:
        raise ValueError("must be exactly one public key line, got %d lines" % len(lines))
    parts = line.split(None, 2)
    if not parts[0].startswith(KEY_PREFIXES):
        raise ValueError("must start with ssh-, ecdsa- or sk- (e.g. 'ssh-ed25519 AAAA...'), got %r" % parts[0][:20])
    if len(parts) < 2:
        raise ValueError("has a key type but no base64 key body")
    body = parts[1]
    if not re.match(r"^[A-Za-z0-9+/]+={0,3}$", body):
        raise ValueError("key body is not base64")
    try:
        base64.b64decode(body.encode("ascii"), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("key body is not valid base64")
    comment = parts[2].strip() if len(parts) > 2 else ""
    return parts[0], body, comment


def key_identity(text):
    """``type body`` (comment dropped) or None when ``text`` is not a parsable key."""
    try:
        ktype, body, _comment = parse_public_key(text)
    except ValueError:
        return None
    return "%s %s" % (ktype, body)


def find_account_key(keys, public_key):
    """The account key whose type+body equals ``public_key``'s, or None."""
    wanted = key_identity(public_key)
    if wanted is None:
        return None
    for key in keys or []:
        if not isinstance(key, dict):
            continue
        text = key.get("key") or key.get("public_key") or key.get("ssh_key")
        if key_identity(text) == wanted:
            return key
    return None

# -*- coding: utf-8 -*-
# Copyright: (c) 2026, voltx engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The one place that reads an instance row's SSH endpoint and status.

The modules (``summarize_instance``, waiting for SSH) and the inventory plugin (``ansible_host``/``ansible_port``,
``vastai_status`` and its groups) both call these functions, so for one API row they can never disagree.
Pure: no Ansible and no HTTP here.
"""

from __future__ import annotations

import math

SSH_USER = "root"

# What an instance whose ``actual_status`` is null (or blank) is called everywhere: in module results, in the
# inventory's ``vastai_status`` and its ``vastai_provisioning`` group, and in every ``statuses`` filter.
# Vast.ai reports null while the contract exists but no container has been created yet; a string (rather than
# None) can name a group and be written in a ``statuses`` list.
NULL_STATUS = "provisioning"

MODE_DIRECT = "direct"
MODE_PROXY = "proxy"


def to_int(value):
    """An int from an int or a numeric string (the API sends both); None for anything else, booleans included."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def to_float(value):
    """A float from a number or a numeric string; None for anything else (NaN and booleans included)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(str(value).strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) or math.isinf(number) else number


def to_port(value):
    """A TCP port (1-65535) from an int or a numeric string; None otherwise."""
    port = to_int(value)
    return port if port is not None and 0 < port < 65536 else None


def _text(value):
    """A stripped string, or None when blank or not a string (``public_ipaddr`` arrives as ``"203.0.113.7\\n"``)."""
    if isinstance(value, str):
        return value.strip() or None
    return None


def public_ipaddr(inst):
    """The row's ``public_ipaddr`` without the whitespace the API leaves around it; None when blank."""
    return _text(inst.get("public_ipaddr")) if isinstance(inst, dict) else None


def direct_ssh_port(inst):
    """The host port Docker maps to the container's 22/tcp, or None.

    The list can hold an IPv6 entry (``HostIp: "::"``) before the IPv4 one; ``public_ipaddr`` is an IPv4 address, so
    the first IPv4 entry wins and an IPv6 one is used only when no IPv4 entry has a usable port.
    """
    ports = inst.get("ports") if isinstance(inst, dict) else None
    mappings = ports.get("22/tcp") if isinstance(ports, dict) else None
    if not isinstance(mappings, list):
        return None
    fallback = None
    for mapping in mappings:
        if not isinstance(mapping, dict):
            continue
        port = to_port(mapping.get("HostPort"))
        if port is None:
            continue
        if ":" not in str(mapping.get("HostIp") or ""):
            return port
        if fallback is None:
            fallback = port
    return fallback


def proxy_ssh_endpoint(inst):
    """(host, port) of the Vast.ai SSH proxy, or (None, None).

    Like ``vastai ssh-url``: ``ssh_host``/``ssh_port``, plus one when ``image_runtype`` contains ``jupyter`` (on
    those images the proxy's ``ssh_port`` leads to Jupyter and SSH sits on the next port).
    """
    if not isinstance(inst, dict):
        return None, None
    host = _text(inst.get("ssh_host"))
    port = to_port(inst.get("ssh_port"))
    if host is None or port is None:
        return None, None
    if "jupyter" in str(inst.get("image_runtype") or ""):
        port += 1
        if port > 65535:
            return None, None
    return host, port


def ssh_endpoint(inst):
    """(host, port, mode) to SSH to an instance row, mode being ``direct``, ``proxy`` or None.

    The rule of ``vastai ssh-url``: when ``ports["22/tcp"]`` maps a host port, SSH goes straight to ``public_ipaddr``
    on that port; otherwise through the proxy (``proxy_ssh_endpoint``). Where the CLI would print an unusable URL
    (a 22/tcp mapping but no public address, or no numeric port), this falls back to the proxy instead.
    (None, None, None) while neither is known, e.g. right after the rent.
    """
    if not isinstance(inst, dict):
        return None, None, None
    public_ip = public_ipaddr(inst)
    port = direct_ssh_port(inst)
    if public_ip is not None and port is not None:
        return public_ip, port, MODE_DIRECT
    host, port = proxy_ssh_endpoint(inst)
    if host is not None:
        return host, port, MODE_PROXY
    return None, None, None


def instance_status(inst):
    """The instance's ``actual_status``, stripped and lower-cased; ``NULL_STATUS`` when null or blank.

    None only when ``inst`` is not a row at all.
    """
    if not isinstance(inst, dict):
        return None
    status = inst.get("actual_status")
    status = status.strip().lower() if isinstance(status, str) else None
    return status or NULL_STATUS

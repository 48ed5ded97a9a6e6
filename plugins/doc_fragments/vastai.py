# -*- coding: utf-8 -*-
# Copyright: (c) 2026, voltx engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:  # pylint: disable=too-few-public-methods
    """Shared documentation for the voltx.vastai modules."""

    DOCUMENTATION = r"""
options:
  api_url:
    description:
      - Base URL of the Vast.ai API.
      - When not set, the E(VAST_API_URL) environment variable is used, then C(https://console.vast.ai).
    type: str
  request_timeout:
    description:
      - Timeout in seconds for each HTTP request.
    type: float
    default: 30.0
  retries:
    description:
      - How many times a request is retried after HTTP 429, 502, 503, 504, a connection error or a timeout,
        with exponential backoff and jitter (a C(Retry-After) header of up to 60 seconds is honoured).
      - Only reads, deletions and idempotent updates are retried. Renting an instance is never retried blindly,
        and an exhausted daily search quota is never retried.
    type: int
    default: 4
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    support: full
    platforms: all
requirements:
  - requests
notes:
  - The Vast.ai API key is not an option, so that it is never written into the module's payload (Ansible writes a
    module and its options to a file under C(~/.ansible/tmp) when pipelining is off). The module reads it itself, on
    the controller, like the C(vastai) CLI and the C(voltx.vastai.vastai) inventory, from the E(VAST_API_KEY)
    environment variable, then the 2FA session key file C($XDG_CONFIG_HOME/vastai/vast_tfa_key) that
    C(vastai tfa login) writes, then C($XDG_CONFIG_HOME/vastai/vast_api_key) (C(vastai set api-key) writes it;
    C(XDG_CONFIG_HOME) defaults to C(~/.config)), then the legacy C(~/.vast_api_key). Files are stripped of whitespace.
  - When the 2FA session key is refused as expired (HTTP 404 C(Session expired. Please log in again.) or 401
    C(Invalid user key)), the request is sent once more with the next key file's key, as the CLI does.
  - The key is sent only as a bearer token in the C(Authorization) header and never appears in a message or a
    returned value.
  - All options of this collection's modules can be set once with C(module_defaults) and the action group
    C(group/voltx.vastai.vastai).
"""

    OFFER_FILTERS = r"""
options:
  gpu_name:
    description:
      - GPU model, for example C(RTX 5090). Underscores are turned into spaces, like the vastai CLI does
        (C(RTX_5090) is the same as C(RTX 5090)).
    type: str
  num_gpus:
    description:
      - Exact number of GPUs in the offer.
    type: int
  min_cpu_cores:
    description:
      - Minimum number of effective CPU cores, the share of the host's vCPUs the rental gets
        (offer field C(cpu_cores_effective)), roughly the host's cores times the offer's GPU fraction.
    type: float
  min_host_cpu_cores:
    description:
      - Minimum number of vCPUs of the whole host machine (offer field C(cpu_cores)), what the vastai CLI's
        C(cpu_cores>=N) filters on. The guide's "128+ CPU cores (EPYC 192 preferred)" is this number.
    type: int
  min_ram_gb:
    description:
      - Minimum host RAM in GB (offer field C(cpu_ram), sent in MB as GB x 1000 like the CLI).
    type: float
  min_disk_gb:
    description:
      - Minimum free disk in GB on the offer (offer field C(disk_space)).
    type: float
  min_cuda:
    description:
      - Minimum CUDA version the host driver supports, for example C(12.8) (offer field C(cuda_max_good)).
    type: float
  max_dph:
    description:
      - Maximum total price in dollars per hour, storage included (offer field C(dph_total)).
      - Checked again on every returned offer, whatever the server sent.
    type: float
  min_reliability:
    description:
      - Minimum host reliability between C(0) and C(1), for example C(0.95).
    type: float
  min_inet_up_mbps:
    description:
      - Minimum upload bandwidth in Mb/s (offer field C(inet_up)).
    type: float
  min_duration_days:
    description:
      - Minimum number of days the host keeps its listing (offer field C(duration), sent in seconds).
    type: float
  verified:
    description:
      - Only verified hosts when V(true) (the CLI default), only unverified hosts when V(false).
      - Non-external, rentable offers are always required. Use O(query) with C(verified=null) to drop the
        verification filter.
    type: bool
    default: true
  rental_type:
    description:
      - V(on-demand) rents at the listed price; V(interruptible) searches bid offers (API type C(bid)).
    type: str
    default: on-demand
    choices: [on-demand, interruptible]
  query:
    description:
      - Extra raw filters, merged last over the ones above; each key is an offer field and each value a dict of
        operator to value (see the examples of M(voltx.vastai.offer_info)).
      - Each field must be a known offer field (or one of the CLI aliases C(cuda_vers), C(dph), C(dlperf_usd),
        C(flops_usd), C(display_active)); operators are C(eq), C(neq), C(gt), C(gte), C(lt), C(lte), C(in), C(notin).
      - A bare value means C(eq). A null value (or C(any)) removes that filter, like the CLI's C(field=any).
      - C(cpu_ram), C(gpu_ram) are in MB and C(duration) in seconds here. Values go out as the CLI sends them,
        numbers as strings (V(1), V(0.2)), except C(cpu_ram), C(gpu_ram), C(gpu_total_ram), C(duration) (floats)
        and C(driver_version) (an integer).
    type: dict
  order:
    description:
      - Sort order, most significant first. Each item is an offer field, with a leading or trailing C(-) for
        descending and C(+) (or nothing) for ascending, for example V([dph_total, -reliability]).
      - The CLI's comma syntax V(dph+,reliability-) is accepted too.
      - Defaults to the cheapest first (C(dph_total) ascending).
    type: list
    elements: str
  limit:
    description:
      - Maximum number of offers the API returns.
    type: int
  blocklist_file:
    description:
      - The persistent machine blocklist on the controller; offers on a machine it lists are never chosen.
      - When not set, the E(VOLTX_VASTAI_BLOCKLIST) environment variable is used, then
        C(~/.local/state/voltx-vastai/blocklist.json). A missing file blocks nothing.
      - The file is JSON, an object whose C(machines) list holds one object per machine with C(machine_id),
        C(reason), C(date) and C(instance_id). M(voltx.vastai.instance) adds to it when it destroys an instance
        with O(voltx.vastai.instance#module:blocklist_reason).
    type: path
"""

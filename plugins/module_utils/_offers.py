# -*- coding: utf-8 -*-
# Copyright: (c) 2026, voltx engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Pure functions: the guide's offer filters -> the ``/bundles/`` query; offer re-check and ranking.

No Ansible and no HTTP here. Offers come from the network and are untrusted: ``offer_problems``
re-checks every offer against the query that was sent, so a caller never rents an offer that
does not satisfy ``max_dph`` and friends, whatever the server returned.
"""

from __future__ import annotations

import math
import re

OPERATORS = ("eq", "neq", "gt", "gte", "lt", "lte", "in", "notin")

# Query/sort field aliases, as the vastai CLI applies them.
FIELD_ALIASES = {
    "cuda_vers": "cuda_max_good",
    "dph": "dph_total",
    "dlperf_usd": "dlperf_per_dphtotal",
    "flops_usd": "flops_per_dphtotal",
    "display_active": "gpu_display_active",
}

# Offer columns (vast-api.md section 7.1) plus the search-only fields the server maps itself.
KNOWN_OFFER_FIELDS = frozenset("""
id ask_contract_id bundle_id machine_id host_id num_gpus gpu_name gpu_arch gpu_ram gpu_total_ram gpu_frac gpu_ids
gpu_lanes pci_gen pcie_bw gpu_mem_bw gpu_max_power gpu_max_temp compute_cap cuda_max_good driver_version driver_vers
bw_nvlink total_flops dlperf dlperf_per_dphtotal flops_per_dphtotal score cpu_name cpu_arch cpu_cores
cpu_cores_effective cpu_ghz cpu_ram has_avx mobo_name disk_space disk_bw disk_name inet_up inet_down inet_up_cost
inet_down_cost direct_port_count dph_base storage_cost dph_total storage_total_cost vram_costperhour min_bid is_bid
credit_discount_max reliability reliability2 reliability_mult expected_reliability verification vericode rentable
rented external hosting_type geolocation geolocode public_ipaddr static_ip os_version start_date end_date duration
vms_enabled is_vm_deverified gpu_display_active resource_type cluster_id hostname webpage avail_vol_ask_id
avail_vol_dph avail_vol_size time_remaining time_remaining_isbid rn dph_total_adj discount_rate discounted_hourly
discounted_dph_total internet_up_cost_per_tb internet_down_cost_per_tb verified datacenter
""".split())

# Keys of the /bundles/ body that are not filters; each has its own option.
CONTROL_KEYS = {
    "order": "order",
    "limit": "limit",
    "type": "rental_type",
    "allocated_storage": "disk_gb",
}

RENTAL_TYPES = {"on-demand": "on-demand", "interruptible": "bid"}
DEFAULT_ORDER = [["dph_total", "asc"]]
DEFAULT_ALLOCATED_STORAGE = 5.0

# Filter options (module option -> (offer column, operator, multiplier)).
FILTER_OPTIONS = (
    ("num_gpus", "num_gpus", "eq", 1),
    ("min_cpu_cores", "cpu_cores_effective", "gte", 1),
    ("min_host_cpu_cores", "cpu_cores", "gte", 1),
    ("min_ram_gb", "cpu_ram", "gte", 1000.0),
    ("min_disk_gb", "disk_space", "gte", 1),
    ("min_cuda", "cuda_max_good", "gte", 1),
    ("max_dph", "dph_total", "lte", 1),
    ("min_reliability", "reliability", "gte", 1),
    ("min_inet_up_mbps", "inet_up", "gte", 1),
    ("min_duration_days", "duration", "gte", 86400.0),
)
# Fields the CLI's parse_query multiplies, so it sends them as floats; driver_version goes out as an integer.
CLI_FLOAT_FIELDS = frozenset(["cpu_ram", "gpu_ram", "gpu_total_ram", "duration"])
FILTER_OPTION_NAMES = (("gpu_name",) + tuple(o[0] for o in FILTER_OPTIONS)
                       + ("verified", "rental_type", "query", "order", "limit"))

# Bounds checked before any request: option -> (minimum, strictly greater?, maximum)
OPTION_BOUNDS = {
    "num_gpus": (1, False, None),
    "min_cpu_cores": (0, False, None),
    "min_host_cpu_cores": (0, False, None),
    "min_ram_gb": (0, False, None),
    "min_disk_gb": (0, False, None),
    "min_cuda": (0, False, None),
    "max_dph": (0, True, None),
    "min_reliability": (0, False, 1),
    "min_inet_up_mbps": (0, False, None),
    "min_duration_days": (0, False, None),
    "limit": (1, False, None),
}


def canonical_field(name):
    return FIELD_ALIASES.get(name, name)


def normalize_gpu_name(name):
    """``RTX_5090`` -> ``RTX 5090`` (the CLI turns underscores into spaces)."""
    if name is None:
        return None
    return " ".join(str(name).replace("_", " ").split())


def check_option_bounds(options):
    """Raise ValueError naming the option when a numeric filter is out of range."""
    for name, (minimum, strict, maximum) in OPTION_BOUNDS.items():
        value = options.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("%s: must be a number, got %r" % (name, value))
        if math.isnan(value):
            raise ValueError("%s: must be a number, got NaN" % name)
        if strict and value <= minimum:
            raise ValueError("%s: must be greater than %s, got %s" % (name, minimum, value))
        if not strict and value < minimum:
            raise ValueError("%s: must be at least %s, got %s" % (name, minimum, value))
        if maximum is not None and value > maximum:
            raise ValueError("%s: must be at most %s, got %s" % (name, maximum, value))
    gpu_name = options.get("gpu_name")
    if gpu_name is not None and not normalize_gpu_name(gpu_name):
        raise ValueError("gpu_name: must not be empty")


def parse_order(order):
    """``["dph_total", "-reliability"]`` or ``"dph+,reliability-"`` -> ``[[col, "asc"|"desc"], ...]``."""
    if order is None:
        return [list(o) for o in DEFAULT_ORDER]
    if isinstance(order, str):
        items = order.split(",")
    elif isinstance(order, (list, tuple)):
        items = []
        for item in order:
            if isinstance(item, (list, tuple)) and len(item) == 2:
                items.append("%s%s" % (item[0], "-" if str(item[1]).lower() == "desc" else "+"))
            else:
                items.extend(str(item).split(","))
    else:
        raise ValueError("order: must be a list of field names, got %r" % (order,))
    result = []
    for raw in items:
        token = raw.strip()
        if not token:
            continue
        direction = "asc"
        if token.startswith("-"):
            direction, token = "desc", token[1:]
        elif token.startswith("+"):
            token = token[1:]
        if token.endswith("-"):
            direction, token = "desc", token[:-1]
        elif token.endswith("+"):
            direction, token = "asc", token[:-1]
        token = token.strip()
        field = canonical_field(token)
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", token) or field not in KNOWN_OFFER_FIELDS:
            raise ValueError("order: unknown offer field %r" % token)
        result.append([field, direction])
    if not result:
        raise ValueError("order: must name at least one offer field")
    return result


def cli_value(field, value):
    """A search value in the form the CLI's parse_query sends it: numbers as strings (``1``, ``0.2``), except the
    fields it multiplies (floats) and driver_version (an integer); booleans, null and text unchanged."""
    if isinstance(value, list):
        return [cli_value(field, item) for item in value]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if field in CLI_FLOAT_FIELDS:
        return float(value)
    if field in ("driver_version", "driver_vers"):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return repr(value)


def _check_term(field, term):
    """Validate one raw query term; returns the canonical term dict."""
    if not isinstance(term, dict):
        # A bare value means equality, like the CLI's ``field=value``.
        return {"eq": term}
    if not term:
        raise ValueError("query: field %r needs at least one operator (%s)" % (field, ", ".join(OPERATORS)))
    out = {}
    for op, value in term.items():
        if op not in OPERATORS:
            raise ValueError("query: unknown operator %r for field %r; use one of %s" % (op, field, ", ".join(OPERATORS)))
        if op in ("in", "notin") and not isinstance(value, (list, tuple)):
            raise ValueError("query: operator %r for field %r needs a list, got %r" % (op, field, value))
        out[op] = list(value) if isinstance(value, tuple) else value
    return out


def validate_raw_query(query):
    """Check a user ``query`` dict; returns ``{canonical_field: term_or_None}`` (None = drop that field)."""
    if query is None:
        return {}
    if not isinstance(query, dict):
        raise ValueError("query: must be a dict of offer field -> {operator: value}")
    out = {}
    for name, term in query.items():
        name = str(name)
        if name in CONTROL_KEYS:
            raise ValueError("query: %r is not an offer field; use the %s option" % (name, CONTROL_KEYS[name]))
        field = canonical_field(name)
        if field not in KNOWN_OFFER_FIELDS:
            raise ValueError("query: unknown offer field %r" % name)
        if term is None or (isinstance(term, str) and term.strip().lower() in ("any", "*", "?")):
            out[field] = None  # the CLI's field=any: drop this filter (e.g. a default)
            continue
        out[field] = _check_term(name, term)
    return out


def build_offer_query(gpu_name=None, num_gpus=None, min_cpu_cores=None, min_ram_gb=None, min_disk_gb=None,
                      min_cuda=None, max_dph=None, min_reliability=None, min_inet_up_mbps=None,
                      min_duration_days=None, verified=True, rental_type="on-demand", query=None, order=None,
                      limit=None, allocated_storage=None, min_host_cpu_cores=None):
    """Build the ``POST /api/v0/bundles/`` body. Raises ValueError naming the bad option."""
    check_option_bounds(dict(
        gpu_name=gpu_name, num_gpus=num_gpus, min_cpu_cores=min_cpu_cores, min_host_cpu_cores=min_host_cpu_cores,
        min_ram_gb=min_ram_gb,
        min_disk_gb=min_disk_gb, min_cuda=min_cuda, max_dph=max_dph, min_reliability=min_reliability,
        min_inet_up_mbps=min_inet_up_mbps, min_duration_days=min_duration_days, limit=limit))
    if rental_type is None:
        rental_type = "on-demand"
    if rental_type not in RENTAL_TYPES:
        raise ValueError("rental_type: must be one of %s, got %r" % (", ".join(RENTAL_TYPES), rental_type))
    raw = validate_raw_query(query)
    sort = parse_order(order)

    body = {}
    if verified is not None:
        body["verified"] = {"eq": bool(verified)}
    body["external"] = {"eq": False}
    body["rentable"] = {"eq": True}
    if gpu_name is not None:
        body["gpu_name"] = {"eq": normalize_gpu_name(gpu_name)}
    values = dict(num_gpus=num_gpus, min_cpu_cores=min_cpu_cores, min_host_cpu_cores=min_host_cpu_cores,
                  min_ram_gb=min_ram_gb, min_disk_gb=min_disk_gb,
                  min_cuda=min_cuda, max_dph=max_dph, min_reliability=min_reliability,
                  min_inet_up_mbps=min_inet_up_mbps, min_duration_days=min_duration_days)
    for option, field, op, factor in FILTER_OPTIONS:
        value = values[option]
        if value is None:
            continue
        if factor != 1:
            value = float(value) * factor
        body.setdefault(field, {})[op] = cli_value(field, value)
    for field, term in raw.items():  # raw query merged last
        if term is None:
            body.pop(field, None)
        elif field == "gpu_name":
            body[field] = dict((op, _gpu_value(v)) for op, v in term.items())
        else:
            body[field] = dict((op, cli_value(field, v)) for op, v in term.items())
    body["order"] = sort
    body["type"] = RENTAL_TYPES[rental_type]
    if limit is not None:
        body["limit"] = int(limit)
    if allocated_storage is None:
        allocated_storage = min_disk_gb if min_disk_gb is not None else DEFAULT_ALLOCATED_STORAGE
    body["allocated_storage"] = float(allocated_storage)
    return body


def exclude_machines(query, machine_ids):
    """The query with ``machine_id notin machine_ids`` added to any machine_id term already there."""
    if not machine_ids:
        return query
    term = dict(query.get("machine_id") or {})
    ids = set(term.get("notin") or []) | set(cli_value("machine_id", int(i)) for i in machine_ids)
    term["notin"] = sorted(ids, key=lambda i: (_number(i) is None, _number(i) or 0, str(i)))
    query["machine_id"] = term
    return query


def _gpu_value(value):
    if isinstance(value, list):
        return [normalize_gpu_name(v) if isinstance(v, str) else v for v in value]
    return normalize_gpu_name(value) if isinstance(value, str) else value


# --------------------------------------------------------------------------------------------
# Client-side re-check of offers (API data is untrusted)
# --------------------------------------------------------------------------------------------

NOT_FILTER_KEYS = frozenset(["order", "type", "limit", "allocated_storage", "disable_bundling"])
# Boolean columns that may be absent from an offer; absent -> not checked (the server filtered).
SOFT_BOOL_FIELDS = frozenset(["external", "rentable", "rented", "verified", "datacenter"])
PRICE_EPSILON = 1e-9


def _number(value):
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return None if math.isnan(number) else number
    return None


def _offer_value(offer, field):
    """(present, value) of a query field on an offer, mapping the server-side fields."""
    if field == "verified":
        if "verification" in offer and offer["verification"] is not None:
            return True, str(offer["verification"]).strip().lower() == "verified"
        if "vericode" in offer and offer["vericode"] is not None:
            return True, _number(offer["vericode"]) == 1
        if "verified" in offer:
            return True, bool(offer["verified"])
        return False, None
    if field == "datacenter":
        if offer.get("hosting_type") is not None:
            return True, _number(offer["hosting_type"]) == 1
        if "datacenter" in offer:
            return True, bool(offer["datacenter"])
        return False, None
    if field in ("external", "rentable", "rented"):
        if field not in offer:
            return False, None
        return True, bool(offer[field])  # null counts as false
    if field == "reliability" and offer.get("reliability") is None and offer.get("reliability2") is not None:
        return True, offer["reliability2"]
    if field == "driver_version" and offer.get("driver_vers") is not None:
        return True, offer["driver_vers"]
    if field == "geolocation":
        geo = offer.get("geolocation")
        if geo is None:
            return False, None
        return True, str(geo).strip()[-2:].upper()
    if field not in offer or offer[field] is None:
        return False, None
    return True, offer[field]


def _equal(actual, expected):
    if isinstance(expected, bool) or isinstance(actual, bool):
        return bool(actual) == bool(expected) if isinstance(expected, bool) else actual == expected
    a_num, e_num = _number(actual), _number(expected)
    if a_num is not None and e_num is not None and not (isinstance(actual, str) and isinstance(expected, str)):
        return abs(a_num - e_num) <= 1e-9
    if isinstance(actual, str) and isinstance(expected, str):
        return normalize_gpu_name(actual).lower() == normalize_gpu_name(expected).lower()
    return actual == expected


def _compare(field, actual, op, expected):
    """None when the term holds, else a short reason."""
    if field == "geolocation":
        if op in ("in", "notin"):
            expected = [str(e).strip().upper()[-2:] for e in expected]
        elif isinstance(expected, str):
            expected = expected.strip().upper()[-2:]
    if op == "eq":
        ok = _equal(actual, expected)
    elif op == "neq":
        ok = not _equal(actual, expected)
    elif op in ("in", "notin"):
        member = any(_equal(actual, e) for e in expected)
        ok = member if op == "in" else not member
    else:
        a_num, e_num = _number(actual), _number(expected)
        if a_num is None or e_num is None:
            return "%s=%r cannot be compared with %s %r" % (field, actual, op, expected)
        if op == "gt":
            ok = a_num > e_num
        elif op == "gte":
            ok = a_num >= e_num - PRICE_EPSILON
        elif op == "lt":
            ok = a_num < e_num
        else:
            ok = a_num <= e_num + PRICE_EPSILON
    if ok:
        return None
    return "%s=%r fails %s %r" % (field, actual, op, expected)


def offer_problems(offer, query):
    """Why ``offer`` does not satisfy ``query`` (the dict sent to /bundles/); [] when it does."""
    if not isinstance(offer, dict):
        return ["offer is not an object"]
    problems = []
    if _number(offer.get("id")) is None:
        problems.append("offer has no numeric id")
    for field, term in query.items():
        if field in NOT_FILTER_KEYS or not isinstance(term, dict):
            continue
        if field == "duration":
            present, actual = _duration(offer)
        else:
            present, actual = _offer_value(offer, field)
        if not present:
            if field in SOFT_BOOL_FIELDS:
                continue
            problems.append("offer has no %s to check against %r" % (field, term))
            continue
        for op, expected in term.items():
            reason = _compare(field, actual, op, expected)
            if reason:
                problems.append(reason)
    return problems


def _duration(offer):
    if offer.get("duration") is not None:
        return True, offer["duration"]
    return False, None


def offer_sort_key(offer, field):
    present, value = _offer_value(offer, field)
    number = _number(value) if present else None
    return number


def rank_offers(offers, order=None):
    """Stable ranking by ``order`` (default dph_total ascending); missing values last; ties by id."""
    sort = parse_order(order) if order is None or not _is_parsed(order) else order
    ranked = sorted(offers, key=lambda o: (_number(o.get("id")) is None, _number(o.get("id")) or 0))
    for field, direction in reversed(sort):
        present = [o for o in ranked if offer_sort_key(o, field) is not None]
        missing = [o for o in ranked if offer_sort_key(o, field) is None]
        present.sort(key=lambda o, f=field: offer_sort_key(o, f), reverse=(direction == "desc"))
        ranked = present + missing
    return ranked


def _is_parsed(order):
    return isinstance(order, list) and all(isinstance(i, list) and len(i) == 2 and i[1] in ("asc", "desc")
                                           for i in order)


def select_offers(offers, query):
    """Split offers into (accepted ranked by the query's order, rejected [{id, problems}])."""
    accepted, rejected = [], []
    for offer in offers:
        problems = offer_problems(offer, query)
        if problems:
            rejected.append({"id": offer.get("id") if isinstance(offer, dict) else None, "problems": problems})
        else:
            accepted.append(offer)
    return rank_offers(accepted, query.get("order") or DEFAULT_ORDER), rejected

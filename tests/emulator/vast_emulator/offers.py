"""Offers: the catalog and the /bundles/ query language, applied the way the Vast server applies it."""

import json
import os
import time

DEFAULT_CATALOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "catalog.json")

# Keys of a search body that steer the search instead of filtering on a column.
CONTROL_KEYS = {"order", "type", "limit", "allocated_storage", "disable_bundling", "select_cols"}
# What the emulator knows of the search language comes from the API's side, never from the collection's tables:
# the official client's field table and aliases (vastai 1.9.1, vastai/api/query.py offers_fields and
# offers_alias, copied as shipped), the offer columns of shared/reference/vast-api.md section 7.1, and the names
# the server maps itself (reference section 3.1 and checklist 8.3).
CLIENT_SEARCH_FIELDS = frozenset("""
bw_nvlink compute_cap cpu_arch cpu_cores cpu_cores_effective cpu_ghz cpu_ram cuda_max_good datacenter
direct_port_count driver_version disk_bw disk_space dlperf dlperf_per_dphtotal dph_total duration external
flops_per_dphtotal gpu_arch gpu_display_active gpu_frac gpu_mem_bw gpu_name gpu_ram gpu_total_ram gpu_max_power
gpu_max_temp has_avx host_id id inet_down inet_down_cost inet_up inet_up_cost machine_id min_bid mobo_name num_gpus
pci_gen pcie_bw reliability rentable rented storage_cost static_ip total_flops ubuntu_version verification verified
vms_enabled geolocation cluster_id
""".split())
CLIENT_ALIASES = {
    "cuda_vers": "cuda_max_good",
    "display_active": "gpu_display_active",
    "dlperf_usd": "dlperf_per_dphtotal",
    "dph": "dph_total",
    "flops_usd": "flops_per_dphtotal",
}
# Section 7.1's scalar columns; the price breakdowns (search, instance) and the logo path are not filters.
OFFER_COLUMNS = frozenset("""
id ask_contract_id bundle_id machine_id host_id num_gpus gpu_name gpu_arch gpu_ram gpu_total_ram gpu_frac gpu_ids
gpu_lanes pci_gen pcie_bw gpu_mem_bw gpu_max_power gpu_max_temp compute_cap cuda_max_good driver_version driver_vers
bw_nvlink total_flops dlperf dlperf_per_dphtotal flops_per_dphtotal score cpu_name cpu_arch cpu_cores
cpu_cores_effective cpu_ghz cpu_ram has_avx mobo_name disk_space disk_bw disk_name inet_up inet_down inet_up_cost
inet_down_cost direct_port_count dph_base storage_cost dph_total storage_total_cost vram_costperhour min_bid is_bid
credit_discount_max reliability reliability2 reliability_mult expected_reliability verification vericode rentable
rented external hosting_type geolocation geolocode public_ipaddr static_ip os_version start_date end_date duration
vms_enabled is_vm_deverified gpu_display_active resource_type cluster_id hostname webpage avail_vol_ask_id
avail_vol_dph avail_vol_size time_remaining time_remaining_isbid rn dph_total_adj discount_rate discounted_hourly
discounted_dph_total internet_up_cost_per_tb internet_down_cost_per_tb
""".split())
# Column names the CLI or the server treat as another column.
ALIASES = dict(CLIENT_ALIASES, reliability2="reliability")
# Names the server maps to a column itself (verified -> vericode, datacenter -> hosting_type, ...).
SERVER_FIELDS = frozenset(["verified", "datacenter", "geolocation", "driver_version", "duration"])
# The CLI only warns about other names and sends them; what the server then does is not on record (reference 3.1
# item 8). The emulator refuses them, with the server's wording for an unknown key on the instance list (3.3), so a
# typo cannot silently match everything.
SEARCH_FIELDS = CLIENT_SEARCH_FIELDS | OFFER_COLUMNS | SERVER_FIELDS | set(ALIASES)
DEFAULT_ALLOCATED_STORAGE = 5.0
# One client saw at most 64 offers per search whatever the limit; the emulator keeps that cap.
MAX_OFFERS = 64
HOURS_PER_MONTH = 30 * 24


class QueryError(ValueError):
    """A search body the server would refuse."""


def load_catalog(path=None):
    """Offers from the catalog file; end_date is re-anchored to now so listings never look expired."""
    with open(path or DEFAULT_CATALOG) as handle:
        offers = json.load(handle)["offers"]
    now = time.time()
    for offer in offers:
        offer["end_date"] = round(now + offer["duration"], 1)
        offer["start_date"] = round(now - 30 * 86400, 1)
    return offers


def driver_version_number(value):
    """'570.124.04' -> 570124004, the integer form the CLI sends and the server compares."""
    if isinstance(value, str) and "." in value:
        parts = (value.split(".") + ["0", "0"])[:3]
        return int(parts[0]) * 1000000 + int(parts[1]) * 1000 + int(parts[2])
    return _number(value)


def priced(offer, allocated_storage, bid):
    """A copy of the offer with the per-search price columns filled in."""
    gpu_hour = offer["min_bid"] if bid else offer["dph_base"]
    disk_hour = offer["storage_cost"] * allocated_storage / HOURS_PER_MONTH
    total = gpu_hour + disk_hour
    view = dict(offer)
    view.update(
        dph_total=round(total, 7),
        storage_total_cost=round(disk_hour, 7),
        dlperf_per_dphtotal=round(offer["dlperf"] / total, 2),
        flops_per_dphtotal=round(offer["total_flops"] / total, 2),
        is_bid=bid,
        duration=round(offer["end_date"] - time.time(), 1),
    )
    breakdown = {"gpuCostPerHour": gpu_hour, "diskHour": round(disk_hour, 7), "totalHour": round(total, 7),
                 "discountTotalHour": 0, "discountedTotalPerHour": round(total, 7)}
    view["search"] = dict(breakdown)
    view["instance"] = dict(breakdown)
    return view


def search(offers, query):
    """Apply a /bundles/ query (already decoded from JSON) to the catalog; returns the matching offers in order."""
    if not isinstance(query, dict):
        raise QueryError("query must be a JSON object")
    search_type = query.get("type", "on-demand")
    if search_type not in ("on-demand", "ondemand", "bid", "reserved"):
        raise QueryError("invalid type %r" % (search_type,))
    allocated = _number(query.get("allocated_storage", DEFAULT_ALLOCATED_STORAGE))
    if allocated is None:
        raise QueryError("allocated_storage must be a number")
    views = [priced(offer, allocated, search_type == "bid") for offer in offers
             if offer["rentable"] and not offer["rented"]]
    filters = [(name, spec) for name, spec in query.items() if name not in CONTROL_KEYS]
    for name, _spec in filters:
        if name not in SEARCH_FIELDS:
            raise QueryError("Error in query parameters: %s is not a valid search key" % name)
    matches = [view for view in views if all(_matches(view, name, spec) for name, spec in filters)]
    order = query.get("order") or [["score", "desc"]]
    for entry in order if isinstance(order, list) else ():
        if isinstance(entry, (list, tuple)) and entry and entry[0] not in SEARCH_FIELDS:
            raise QueryError("Error in query parameters: %s is not a valid order column" % (entry[0],))
        if isinstance(entry, (list, tuple)) and len(entry) > 1 and str(entry[1]).lower() not in ("asc", "desc"):
            raise QueryError("Error in query parameters: order direction must be asc or desc, got %s" % (entry[1],))
    sort_rows(matches, order)
    limit = _number(query.get("limit"))
    return matches[:min(int(limit), MAX_OFFERS) if limit is not None else MAX_OFFERS]


def _matches(offer, name, spec):
    column, value_of = _column(name)
    if column not in offer:
        return True  # a documented column this catalog does not fill: no offer here says otherwise
    if not isinstance(spec, dict):
        spec = {"eq": spec}
    actual = value_of(offer)
    for op, wanted in spec.items():
        if not compare(actual, op, wanted, name):
            return False
    return True


def _column(name):
    """(column that must exist in the offer, function giving the value the filter compares)."""
    name = ALIASES.get(name, name)
    if name == "verified":
        return "verification", lambda offer: offer["verification"] == "verified"
    if name == "datacenter":
        return "hosting_type", lambda offer: offer["hosting_type"] == 1
    if name == "geolocation":
        return "geolocation", lambda offer: (offer["geolocation"] or "")[-2:]
    if name == "driver_version":
        return "driver_vers", lambda offer: offer["driver_vers"]
    if name == "duration":
        return "end_date", lambda offer: offer["end_date"] - time.time()
    return name, lambda offer: offer[name]


def compare(actual, op, wanted, name):
    if op in ("in", "notin"):
        items = wanted if isinstance(wanted, list) else [wanted]
        found = any(actual == _coerce(item, actual, name) for item in items)
        return found if op == "in" else not found
    wanted = _coerce(wanted, actual, name)
    if op == "eq":
        return actual == wanted
    if op == "neq":
        return actual != wanted
    if actual is None or wanted is None or isinstance(actual, bool):
        return False
    try:
        return {"gt": actual > wanted, "gte": actual >= wanted, "lt": actual < wanted, "lte": actual <= wanted}[op]
    except KeyError:
        raise QueryError("invalid operator %r on %s" % (op, name))
    except TypeError:
        return False


def _coerce(wanted, actual, name):
    """The CLI sends numbers as strings: compare them as the column's type."""
    if ALIASES.get(name, name) == "driver_version":
        return driver_version_number(wanted)
    if isinstance(actual, bool):
        if isinstance(wanted, str):
            return wanted.lower() == "true"
        return bool(wanted) if wanted is not None else None
    if isinstance(actual, (int, float)):
        number = _number(wanted)
        return wanted if number is None else number
    if isinstance(actual, str) and isinstance(wanted, str) and name == "gpu_name":
        return wanted.replace("_", " ")
    return wanted


def _number(value):
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def sort_rows(offers, order):
    if not isinstance(order, list):
        raise QueryError("order must be a list of [column, direction]")
    # Stable sorts applied from the last key to the first give a multi-key order; missing values go last.
    for entry in reversed(order):
        if not isinstance(entry, (list, tuple)) or not entry:
            raise QueryError("order must be a list of [column, direction]")
        column = ALIASES.get(entry[0], entry[0])
        descending = len(entry) > 1 and str(entry[1]).lower() == "desc"
        present = [offer for offer in offers if offer.get(column) is not None]
        missing = [offer for offer in offers if offer.get(column) is None]
        present.sort(key=lambda offer: offer[column], reverse=descending)
        offers[:] = present + missing

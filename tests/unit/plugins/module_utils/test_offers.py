"""Offer query building, re-check and ranking (pure)."""

from __future__ import annotations

import ast
import os

import jinja2
import pytest
import yaml

from ansible_collections.voltx.vastai.plugins.module_utils._offers import (
    FIELD_ALIASES,
    KNOWN_OFFER_FIELDS,
    build_offer_query,
    offer_problems,
    parse_order,
    rank_offers,
    select_offers,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
GUIDE = dict(gpu_name="RTX_5090", num_gpus=1, min_cpu_cores=128, min_ram_gb=64, min_disk_gb=250, min_cuda=12.8,
             max_dph=0.2, min_reliability=0.95)


def test_guide_filters_exact_query():
    # Numbers in the CLI's string form, as `vastai --curl search offers` sends them (vast-api.md section 3.1);
    # cpu_ram is multiplied by the CLI and so goes out as a float.
    assert build_offer_query(**GUIDE) == {
        "verified": {"eq": True},
        "external": {"eq": False},
        "rentable": {"eq": True},
        "gpu_name": {"eq": "RTX 5090"},
        "num_gpus": {"eq": "1"},
        "cpu_cores_effective": {"gte": "128"},
        "cpu_ram": {"gte": 64000.0},
        "disk_space": {"gte": "250"},
        "cuda_max_good": {"gte": "12.8"},
        "dph_total": {"lte": "0.2"},
        "reliability": {"gte": "0.95"},
        "order": [["dph_total", "asc"]],
        "type": "on-demand",
        "allocated_storage": 250.0,
    }


def test_defaults_and_extras():
    assert build_offer_query(min_host_cpu_cores=128)["cpu_cores"] == {"gte": "128"}
    q = build_offer_query(min_inet_up_mbps=500, min_duration_days=3, rental_type="interruptible", limit=10,
                          verified=False, allocated_storage=100)
    assert q["inet_up"] == {"gte": "500"}
    assert q["duration"] == {"gte": 259200.0}
    assert q["type"] == "bid"
    assert q["limit"] == 10
    assert q["verified"] == {"eq": False}
    assert q["allocated_storage"] == 100.0
    assert build_offer_query()["allocated_storage"] == 5.0


def test_raw_query_merged_last_with_aliases():
    q = build_offer_query(max_dph=0.3, query={"dph": {"lte": 0.25}, "gpu_name": {"in": ["RTX_4090", "RTX 5090"]},
                                              "geolocation": {"notin": ["CN"]}, "cuda_vers": {"gte": 12},
                                              "verified": None, "static_ip": True})
    assert q["dph_total"] == {"lte": "0.25"}
    assert q["gpu_name"] == {"in": ["RTX 4090", "RTX 5090"]}
    assert q["geolocation"] == {"notin": ["CN"]}
    assert q["cuda_max_good"] == {"gte": "12"}
    assert "verified" not in q
    assert q["static_ip"] == {"eq": True}


def test_raw_query_values_in_the_cli_wire_form():
    q = build_offer_query(query={"machine_id": {"notin": [7, 12]}, "gpu_ram": {"gte": 24000},
                                 "driver_version": {"gte": 535086005.0}, "duration": {"gte": 86400},
                                 "rented": {"eq": None}, "compute_cap": 1200})
    assert q["machine_id"] == {"notin": ["7", "12"]}
    assert q["gpu_ram"] == {"gte": 24000.0} and q["duration"] == {"gte": 86400.0}
    assert q["driver_version"] == {"gte": 535086005}
    assert q["rented"] == {"eq": None} and q["compute_cap"] == {"eq": "1200"}
    # The client's own re-check still compares the string forms as numbers.
    assert offer_problems(good_offer(machine_id=7), q) and not offer_problems(
        good_offer(machine_id=8, gpu_ram=24576, driver_vers=570124004, duration=90000, compute_cap=1200), q)


def test_unknown_query_field():
    with pytest.raises(ValueError) as err:
        build_offer_query(query={"gpu_nmae": {"eq": "x"}})
    assert str(err.value) == "query: unknown offer field 'gpu_nmae'"


@pytest.mark.parametrize("query,needle", [
    ({"dph_total": {"le": 1}}, "unknown operator 'le'"),
    ({"gpu_name": {"in": "RTX 5090"}}, "needs a list"),
    ({"num_gpus": {}}, "needs at least one operator"),
    ({"order": [["dph_total", "asc"]]}, "use the order option"),
    ({"type": "bid"}, "use the rental_type option"),
])
def test_bad_query_terms(query, needle):
    with pytest.raises(ValueError) as err:
        build_offer_query(query=query)
    assert needle in str(err.value)
    assert str(err.value).startswith("query:")


@pytest.mark.parametrize("kwargs,needle", [
    (dict(max_dph=-0.1), "max_dph: must be greater than 0"),
    (dict(max_dph=0), "max_dph: must be greater than 0"),
    (dict(min_reliability=1.5), "min_reliability: must be at most 1"),
    (dict(num_gpus=0), "num_gpus: must be at least 1"),
    (dict(min_ram_gb=-1), "min_ram_gb: must be at least 0"),
    (dict(limit=0), "limit: must be at least 1"),
    (dict(gpu_name="  "), "gpu_name: must not be empty"),
    (dict(rental_type="spot"), "rental_type: must be one of"),
])
def test_option_bounds(kwargs, needle):
    with pytest.raises(ValueError) as err:
        build_offer_query(**kwargs)
    assert needle in str(err.value)


@pytest.mark.parametrize("order,expected", [
    (None, [["dph_total", "asc"]]),
    (["dph_total", "-reliability"], [["dph_total", "asc"], ["reliability", "desc"]]),
    ("dph+,reliability-", [["dph_total", "asc"], ["reliability", "desc"]]),
    (["dph+", "reliability-"], [["dph_total", "asc"], ["reliability", "desc"]]),
    (["score-"], [["score", "desc"]]),
    (["+dlperf_usd"], [["dlperf_per_dphtotal", "asc"]]),
    ([["dph_total", "desc"]], [["dph_total", "desc"]]),
])
def test_parse_order(order, expected):
    assert parse_order(order) == expected


@pytest.mark.parametrize("order", [["bogus"], "dph+,nope-", [""], ["dph total"]])
def test_parse_order_errors(order):
    with pytest.raises(ValueError) as err:
        parse_order(order)
    assert str(err.value).startswith("order:")


def test_known_fields_cover_guide_columns():
    for field in ("gpu_name", "num_gpus", "cpu_cores_effective", "cpu_ram", "disk_space", "cuda_max_good",
                  "dph_total", "reliability", "inet_up", "duration", "verified", "geolocation", "driver_version"):
        assert field in KNOWN_OFFER_FIELDS


def test_every_field_the_module_may_send_is_one_the_api_knows():
    """The emulator's field list is written from the official client and the API reference, not from this module:
    a field name the API does not know, in the module's table or in a query it builds, shows up here."""
    from vast_emulator import offers as api

    body = build_offer_query(rental_type="interruptible", min_host_cpu_cores=128, min_inet_up_mbps=100,
                             min_duration_days=3, order=["dph", "-reliability"], limit=5, **GUIDE)
    sent = {name for name in body if name not in api.CONTROL_KEYS} | {entry[0] for entry in body["order"]}
    assert sorted((sent | KNOWN_OFFER_FIELDS | set(FIELD_ALIASES)) - api.SEARCH_FIELDS) == []
    assert {alias: api.ALIASES.get(alias) for alias in FIELD_ALIASES} == FIELD_ALIASES


def good_offer(**over):
    offer = {"id": 1, "gpu_name": "RTX 5090", "num_gpus": 1, "cpu_cores_effective": 128.0, "cpu_ram": 257000,
             "disk_space": 1800.5, "cuda_max_good": 12.9, "dph_total": 0.19, "reliability": 0.99,
             "verification": "verified", "external": False, "rentable": True}
    offer.update(over)
    return offer


def test_offer_recheck_accepts_good_offer():
    assert offer_problems(good_offer(), build_offer_query(**GUIDE)) == []


@pytest.mark.parametrize("over,needle", [
    (dict(dph_total=0.21), "dph_total"),
    (dict(dph_total="abc"), "cannot be compared"),
    (dict(dph_total=None), "no dph_total"),
    (dict(gpu_name="RTX 4090"), "gpu_name"),
    (dict(num_gpus=2), "num_gpus"),
    (dict(cpu_cores_effective=64), "cpu_cores_effective"),
    (dict(cpu_ram=63000), "cpu_ram"),
    (dict(cuda_max_good=12.7), "cuda_max_good"),
    (dict(reliability=0.9), "reliability"),
    (dict(verification="unverified"), "verified"),
    (dict(external=True), "external"),
    (dict(rentable=False), "rentable"),
    (dict(id=None), "numeric id"),
])
def test_offer_recheck_rejects(over, needle):
    problems = offer_problems(good_offer(**over), build_offer_query(**GUIDE))
    assert problems and any(needle in p for p in problems)


def test_offer_recheck_numeric_strings_and_fallbacks():
    offer = good_offer(dph_total="0.2", reliability=None, reliability2=0.97, gpu_name="RTX_5090")
    offer.pop("external")
    assert offer_problems(offer, build_offer_query(**GUIDE)) == []


def test_offer_recheck_geolocation_and_in():
    q = build_offer_query(query={"geolocation": {"notin": ["CN", "VN"]}, "gpu_name": {"in": ["RTX 4090", "RTX 5090"]}})
    assert offer_problems(good_offer(geolocation="Texas, US"), q) == []
    assert offer_problems(good_offer(geolocation="Beijing, CN"), q)


def test_select_offers_ranks_and_rejects():
    q = build_offer_query(**GUIDE)
    offers = [good_offer(id=3, dph_total=0.18), good_offer(id=1, dph_total=0.5), good_offer(id=2, dph_total=0.15)]
    ranked, rejected = select_offers(offers, q)
    assert [o["id"] for o in ranked] == [2, 3]
    assert rejected[0]["id"] == 1


def test_rank_stable_desc_missing_last():
    offers = [{"id": 5, "dph_total": 0.2, "reliability": 0.9}, {"id": 4, "dph_total": 0.2, "reliability": 0.99},
              {"id": 3, "dph_total": None}, {"id": 2, "dph_total": 0.1, "reliability": 0.5},
              {"id": 1, "dph_total": 0.2, "reliability": 0.99}]
    ranked = rank_offers(offers, ["dph_total", "-reliability"])
    assert [o["id"] for o in ranked] == [2, 1, 4, 5, 3]
    assert [o["id"] for o in rank_offers(offers)] == [2, 1, 4, 5, 3]
    assert [o["id"] for o in rank_offers(list(reversed(offers)))] == [2, 1, 4, 5, 3]


def campaign_offer_order(rank_by):
    """The order playbooks/rent.yml sends for a vastai_rank_by, as roles/campaign/vars/main.yml gives it."""
    with open(os.path.join(ROOT, "roles", "campaign", "vars", "main.yml")) as handle:
        template = yaml.safe_load(handle)["campaign_offer_order"]
    return ast.literal_eval(jinja2.Template(template).render(vastai_rank_by=rank_by))


@pytest.mark.parametrize("rank_by, sent, ranked_ids", [
    # The most work per dollar first; of two equal ones the cheaper.
    ("value", [["dlperf_per_dphtotal", "desc"], ["dph_total", "asc"]], [3, 2, 4, 1]),
    ("price", [["dph_total", "asc"]], [1, 4, 3, 2]),
])
def test_the_campaign_ranks_by_work_per_dollar_or_by_price(rank_by, sent, ranked_ids):
    query = build_offer_query(order=campaign_offer_order(rank_by), **GUIDE)
    assert query["order"] == sent
    offers = [good_offer(id=1, dph_total=0.12, dlperf_per_dphtotal=900.0),
              good_offer(id=2, dph_total=0.19, dlperf_per_dphtotal=1100.0),
              good_offer(id=3, dph_total=0.15, dlperf_per_dphtotal=1100.0),
              good_offer(id=4, dph_total=0.14, dlperf_per_dphtotal=1000.0)]
    ranked, rejected = select_offers(offers, query)
    assert [o["id"] for o in ranked] == ranked_ids and rejected == []

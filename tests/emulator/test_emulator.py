"""The Vast.ai emulator over real HTTP, with real containers and real SSH.

The tests share one emulator and one rented container per module (the machine is small), so the checks that
change that instance (stop/start, preempt, destroy) come last. Each test still passes when pytest-xdist runs
only some of the tests before it on the same worker: nothing relies on an earlier test having run.
"""

import json
import subprocess
import time

import pytest
import requests

from vast_emulator.testing import running_emulator

# What `vastai search offers 'gpu_name=RTX_5090 num_gpus=1 cpu_cores>=128 cpu_ram>=64 disk_space>=250
# cuda_vers>=12.8 dph<=0.2 reliability>=0.95'` sends (reference §3.1): numbers as strings, defaults added.
GUIDE_QUERY = {
    "verified": {"eq": True}, "external": {"eq": False}, "rentable": {"eq": True},
    "gpu_name": {"eq": "RTX 5090"}, "num_gpus": {"eq": "1"}, "cpu_cores": {"gte": "128"},
    "cpu_ram": {"gte": 64000.0}, "disk_space": {"gte": "250"}, "cuda_max_good": {"gte": "12.8"},
    "dph_total": {"lte": "0.2"}, "reliability": {"gte": "0.95"},
    "order": [["score", "desc"]], "type": "on-demand", "allocated_storage": 5.0,
}
GUIDE_MATCHES_BY_SCORE = [24521297, 24513378, 24537135, 24529216]
CHEAPEST_MATCH = 24513378
RTX_4090 = 24632163
RTX_3090 = 24655920
H100 = 24687596
A100 = 24671758
AUTH_ERROR = {"success": False, "error": "auth_error", "msg": "Invalid user key"}
IMAGE = "nvidia/cuda:12.8.0-devel-ubuntu22.04"
# Exactly what `vastai --curl create instance 12345 --image vastai/base-image:@vastai-automatic-tag --disk 250
# --label mylab --onstart-cmd 'echo hi' --ssh --direct --env '-e FOO=bar -p 8080:8080 -p 7000:7000/udp -h myhost'`
# sends (reference section 3.2).
CLI_CREATE_BODY = {
    "client_id": "me", "image": "vastai/base-image:@vastai-automatic-tag",
    "env": {"FOO": "bar", "-p 8080:8080": "1", "-p 7000:7000/udp": "1", "-h": "myhost"},
    "price": None, "disk": 250.0, "label": "mylab", "extra": None, "onstart": "echo hi", "image_login": None,
    "python_utf8": False, "lang_utf8": False, "use_jupyter_lab": False, "jupyter_dir": None, "force": False,
    "cancel_unavail": False, "template_hash_id": None, "user": None, "runtype": "ssh_direc ssh_proxy",
}


class Api:
    def __init__(self, url, api_key):
        self.url = url
        self.session = requests.Session()
        self.session.headers["Authorization"] = "Bearer " + api_key

    def call(self, method, path, **kwargs):
        return self.session.request(method, self.url + path, timeout=60, **kwargs)

    def ok(self, method, path, **kwargs):
        response = self.call(method, path, **kwargs)
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"] == "application/json"
        return response.json()

    def show(self, instance_id):
        return self.ok("GET", "/api/v0/instances/%d/" % instance_id, params={"owner": "me"})["instances"]

    def rent(self, offer_id, **body):
        payload = dict(CLI_CREATE_BODY, image=IMAGE, env={}, disk=10.0, label=None, onstart=None)
        payload.update(body)
        return self.ok("PUT", "/api/v0/asks/%d/" % offer_id, json=payload)["new_contract"]

    def wait_for(self, instance_id, status, timeout=40):
        return self.wait_until(instance_id, lambda row: row["actual_status"] == status, status, timeout)

    def wait_until(self, instance_id, condition, what, timeout=40):
        deadline = time.time() + timeout
        while time.time() < deadline:
            row = self.show(instance_id)
            if condition(row):
                return row
            time.sleep(0.3)
        raise AssertionError("instance %d never reached %s: %s" % (instance_id, what, row))

    def destroy(self, instance_id):
        self.ok("DELETE", "/api/v0/instances/%d/" % instance_id, json={})


def direct_port(row):
    return int(row["ports"]["22/tcp"][0]["HostPort"])


def ledger_row(emulator, instance_id):
    return emulator.state()["ledger"]["instances"][str(instance_id)]


def wait_for_ledger(emulator, instance_id, condition, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        row = ledger_row(emulator, instance_id)
        if condition(row):
            return row
        time.sleep(0.1)
    raise AssertionError("ledger of %d never changed as expected: %s" % (instance_id, row))


def ssh(port, key, command="true"):
    return subprocess.run(
        ["ssh", "-i", key, "-p", str(port), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10",
         "root@127.0.0.1", command], capture_output=True, text=True, timeout=60, check=False)


def keygen(folder, name):
    private = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(private)], check=True)
    return str(private), (folder / (name + ".pub")).read_text().strip()


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("emulator")


@pytest.fixture(scope="module")
def emulator(state_dir):
    with running_emulator(str(state_dir)) as handle:
        yield handle


@pytest.fixture(scope="module")
def api(emulator):
    return Api(emulator.url, emulator.api_key)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ssh")
    return {name: keygen(folder, name) for name in ("account", "attached", "late")}


@pytest.fixture(scope="module")
def rented(api, keys):
    """The shared instance: the guide's cheapest match, rented with the account key, env and an onstart."""
    assert api.call("GET", "/api/v0/ssh/").status_code == 404
    added = api.ok("POST", "/api/v0/ssh/", json={"ssh_key": keys["account"][1]})
    assert added["key"]["public_key"] == keys["account"][1]
    # The onstart appends, so a restart that runs it again shows as a second line; it writes only when sshd is
    # already up, as Vast's SSH launch mode runs it after starting sshd.
    instance_id = api.rent(CHEAPEST_MATCH, disk=250.0, label="shared", env={"VOLT_MODE": "test", "-p 8080:8080": "1"},
                           onstart="pgrep -x sshd > /dev/null && echo onstart-ran >> /root/onstart.out")
    first = api.show(instance_id)
    assert first["actual_status"] in (None, "created", "loading")
    assert first["ports"] is None
    # Attached before sshd is up: the emulator must add it once the container runs.
    api.ok("POST", "/api/v0/instances/%d/ssh/" % instance_id, json={"ssh_key": keys["attached"][1]})
    return instance_id


# ---- offers ---------------------------------------------------------------------------------------------------

def test_guide_search_returns_the_matching_offers_by_score(emulator):
    response = requests.post(emulator.url + "/api/v0/bundles/", json=GUIDE_QUERY, timeout=30)  # no key needed
    assert response.headers["Content-Type"] == "application/json"
    offers = response.json()["offers"]
    assert [offer["id"] for offer in offers] == GUIDE_MATCHES_BY_SCORE
    for offer in offers:
        assert offer["cpu_cores"] >= 128 and offer["cpu_ram"] >= 64000 and offer["disk_space"] >= 250
        assert offer["dph_total"] <= 0.2 and offer["reliability"] >= 0.95 and offer["cuda_max_good"] >= 12.8
        assert offer["dph_total"] == pytest.approx(offer["dph_base"] + offer["storage_cost"] * 5 / 720)


def test_get_search_orders_by_price_and_limits(emulator):
    query = dict(GUIDE_QUERY, order=[["dph_total", "asc"]], limit=2)
    offers = requests.get(emulator.url + "/api/v0/bundles", params={"q": json.dumps(query)}, timeout=30).json()["offers"]
    assert [offer["id"] for offer in offers] == [CHEAPEST_MATCH, 24521297]


# Without the cheapest match's machine and with hosts of 64+ cores and a small disk, the most work per dollar
# (dlperf_per_dphtotal) and the lowest price are two different offers.
VALUE_QUERY = dict(GUIDE_QUERY, cpu_cores={"gte": "64"}, disk_space={"gte": "20"}, allocated_storage=20.0,
                   machine_id={"notin": ["38411"]})


def test_search_orders_by_work_per_dollar_then_price(emulator):
    by_value = requests.post(emulator.url + "/api/v0/bundles/", timeout=30, json=dict(
        VALUE_QUERY, order=[["dlperf_per_dphtotal", "desc"], ["dph_total", "asc"]])).json()["offers"]
    by_price = requests.post(emulator.url + "/api/v0/bundles/", timeout=30, json=dict(
        VALUE_QUERY, order=[["dph_total", "asc"]])).json()["offers"]
    assert sorted(o["id"] for o in by_value) == sorted(o["id"] for o in by_price)
    assert [o["id"] for o in by_value[:2]] == [24568811, 24600487] and by_price[0]["id"] == 24600487
    # The column is the DLPerf score per dollar of the hour's total price at this search's disk size.
    for offer in by_value:
        assert offer["dlperf_per_dphtotal"] == pytest.approx(offer["dlperf"] / offer["dph_total"], abs=0.01)
    values = [o["dlperf_per_dphtotal"] for o in by_value]
    assert values == sorted(values, reverse=True)


def test_search_translates_fields_like_the_server(api):
    def ids(**query):
        return {offer["id"] for offer in api.ok("POST", "/api/v0/bundles/", json=query)["offers"]}

    everything = ids()
    assert len(everything) == 25
    outside = api.ok("POST", "/api/v0/bundles/", json={"geolocation": {"notin": ["US", "CN"]}})["offers"]
    assert outside and all(not offer["geolocation"].endswith(("US", "CN")) for offer in outside)
    assert ids(driver_version={"gte": 575000000}) < everything
    assert ids(verified={"eq": False}) == ids(verification={"eq": "unverified"})
    assert ids(duration={"gte": 86400.0 * 1000}) == set()
    assert ids(gpu_name={"in": ["H100 SXM", "A100 SXM4"]}, num_gpus={"eq": "1"}) == {H100, A100}
    # The disk part of the price: 250 GB pushes the $0.197 offer (storage $0.20/GB/month) over $0.20/h.
    assert ids(**{**GUIDE_QUERY, "allocated_storage": 250}) == set(GUIDE_MATCHES_BY_SCORE) - {24537135}
    bid = api.ok("POST", "/api/v0/bundles/", json={"type": "bid", "id": {"eq": RTX_3090}})["offers"][0]
    assert bid["is_bid"] and bid["dph_total"] == pytest.approx(bid["min_bid"] + bid["storage_cost"] * 5 / 720)


def test_search_takes_the_clis_interruptible_example_exactly(api):
    # `vastai --curl search offers -i --limit 10 -o 'dph+,reliability-' 'gpu_name in [RTX_4090,RTX_5090] geolocation
    # notin [CN,VN] verified=any external=true driver_version>=535.86.05 duration>=3 gpu_ram>=24'` (section 3.1).
    body = {"external": {"eq": True}, "rentable": {"eq": True}, "gpu_name": {"in": ["RTX 4090", "RTX 5090"]},
            "geolocation": {"notin": ["CN", "VN"]}, "driver_version": {"gte": 535086005},
            "duration": {"gte": 259200.0}, "gpu_ram": {"gte": 24000.0},
            "order": [["dph_total", "asc"], ["reliability", "desc"]], "type": "bid", "limit": 10,
            "allocated_storage": 5.0}
    # The catalog's one external offer is in Hanoi: geolocation notin [CN, VN] leaves it out.
    assert api.ok("POST", "/api/v0/bundles/", json=body)["offers"] == []
    assert [o["id"] for o in api.ok("POST", "/api/v0/bundles/", json=dict(body, geolocation={"in": ["VN"]}))[
        "offers"]] == [24624244]
    internal = api.ok("POST", "/api/v0/bundles/", json=dict(body, external={"eq": False}))["offers"]
    assert internal and {offer["gpu_name"] for offer in internal} <= {"RTX 4090", "RTX 5090"}
    assert [offer["dph_total"] for offer in internal] == sorted(offer["dph_total"] for offer in internal)


def test_search_refuses_unknown_fields(api):
    response = api.call("POST", "/api/v0/bundles/", json=dict(GUIDE_QUERY, gpu_nmae={"eq": "RTX 5090"}))
    assert (response.status_code, response.json()) == (400, {
        "success": False, "error": "invalid_request",
        "msg": "Error in query parameters: gpu_nmae is not a valid search key"})
    by_get = api.call("GET", "/api/v0/bundles/", params={"q": json.dumps({"disk_gb": {"gte": 10}})})
    assert by_get.status_code == 400 and "disk_gb" in by_get.json()["msg"]


def test_search_takes_every_field_the_collection_may_send(api):
    from ansible_collections.voltx.vastai.plugins.module_utils import _offers

    # The guide's options in full, as the offer lookup builds them.
    body = _offers.build_offer_query(
        gpu_name="RTX_5090", num_gpus=1, min_cpu_cores=8, min_host_cpu_cores=128, min_ram_gb=64, min_disk_gb=250,
        min_cuda=12.8, max_dph=0.2, min_reliability=0.95, min_inet_up_mbps=100, min_duration_days=3,
        rental_type="interruptible", limit=10, allocated_storage=250)
    assert api.call("POST", "/api/v0/bundles/", json=body).status_code == 200
    refused = [field for field in sorted(_offers.KNOWN_OFFER_FIELDS)
               if api.call("POST", "/api/v0/bundles/", json={field: {"neq": None}}).status_code != 200]
    assert refused == []


# ---- create -----------------------------------------------------------------------------------------------------

def test_create_takes_exactly_what_the_official_client_sends(emulator, api):
    created = api.ok("PUT", "/api/v0/asks/%d/" % RTX_3090, json=CLI_CREATE_BODY)
    assert created["success"] is True
    try:
        row = api.show(created["new_contract"])
        assert (row["image_uuid"], row["image_runtype"], row["disk_space"], row["label"]) == (
            "vastai/base-image:@vastai-automatic-tag", "ssh_direc ssh_proxy", 250.0, "mylab")
        assert row["extra_env"] == [["FOO", "bar"], ["-p 8080:8080", "1"], ["-p 7000:7000/udp", "1"], ["-h", "myhost"]]
    finally:
        api.destroy(created["new_contract"])


@pytest.mark.parametrize("change, complaint", [
    ({"disk_gb": 250}, "unexpected field disk_gb"),
    ({"lable": "typo"}, "unexpected field lable"),
    ({"disk": "250"}, "disk must be of type number"),
    ({"env": "-e FOO=bar -p 8080:8080"}, "env must be of type object"),
    ({"env": [["FOO", "bar"]]}, "env must be of type object"),
    ({"env": {"FOO": 1}}, "env value of FOO must be a string"),
    ({"price": "0.1"}, "price must be of type number"),
    ({"cancel_unavail": "false"}, "cancel_unavail must be of type boolean"),
    ({"runtype": "ssh_direct_please"}, "invalid runtype"),
])
def test_create_refuses_unknown_keys_and_wrong_types(emulator, api, change, complaint):
    before = len(emulator.state()["instances"])
    response = api.call("PUT", "/api/v0/asks/%d/" % RTX_3090, json=dict(CLI_CREATE_BODY, **change))
    body = response.json()
    assert (response.status_code, body["success"], body["error"], body["ask_id"]) == (
        400, False, "invalid_args", RTX_3090)
    assert body["msg"].startswith("error 400/3467: Invalid args: ") and complaint in body["msg"]
    assert len(emulator.state()["instances"]) == before  # nothing rented
    assert RTX_3090 in [o["id"] for o in api.ok("POST", "/api/v0/bundles/", json={})["offers"]]


def test_create_refuses_more_disk_than_the_offer_has(api):
    offer = api.ok("POST", "/api/v0/bundles/", json={"id": {"eq": RTX_3090}})["offers"][0]
    response = api.call("PUT", "/api/v0/asks/%d/" % RTX_3090, json=dict(CLI_CREATE_BODY, disk=offer["disk_space"] + 1))
    assert (response.status_code, response.json()["error"]) == (400, "invalid_args")
    assert "disk" in response.json()["msg"]


@pytest.mark.parametrize("image, pull_error", [
    # On the does-not-exist list: a typo of the image the other tests run.
    ("nvidia/cuda:12.8.0-devel-ubuntu2204",
     "Error response from daemon: manifest for nvidia/cuda:12.8.0-devel-ubuntu2204 not found: manifest unknown"),
    # Outside docker's reference grammar (upper case in the repository).
    ("nvidia/CUDA:12.8.0", "Error response from daemon: invalid reference format"),
])
def test_an_image_that_cannot_be_pulled_fails_like_a_failed_pull(emulator, api, image, pull_error):
    emulator.set_faults(missing_images=["nvidia/cuda:12.8.0-devel-ubuntu2204"])
    instance_id = api.rent(RTX_3090, image=image)
    try:
        row = api.wait_until(instance_id, lambda r: (r["status_msg"] or "").startswith(pull_error), "a failed pull")
        assert row["actual_status"] == "created" and row["ports"] is None and row["image_uuid"] == image
        assert not [name for name in emulator.containers() if name.startswith("vastemu-%d-" % instance_id)]
    finally:
        api.destroy(instance_id)
        emulator.set_faults(missing_images=[])


def test_template_only_create_any_public_image_and_ssh_at_port_plus_one_for_jupyter(emulator, api, keys):
    # `vastai create instance ID --template_hash 661d064bbda1f2a133816b6d55da07c3 --disk 64`: no image, no runtype.
    template_body = dict(CLI_CREATE_BODY, image=None, env={}, disk=64, label=None, onstart=None,
                         template_hash_id="661d064bbda1f2a133816b6d55da07c3")
    del template_body["runtype"]
    from_template = api.ok("PUT", "/api/v0/asks/%d/" % RTX_3090, json=template_body)["new_contract"]
    # The CLI's other example image, outside any list the emulator knows, in jupyter launch mode.
    jupyter = api.rent(RTX_4090, image="pytorch/pytorch", runtype="jupyter_proxy ssh_proxy")
    api.ok("POST", "/api/v0/instances/%d/ssh/" % jupyter, json={"ssh_key": keys["late"][1]})
    try:
        row = api.show(from_template)
        assert (row["image_uuid"], row["image_runtype"], row["template_hash_id"], row["disk_space"]) == (
            "vastai/base-image:@vastai-automatic-tag", "ssh_direc ssh_proxy", "661d064bbda1f2a133816b6d55da07c3", 64.0)
        row = api.wait_for(jupyter, "running")
        assert row["image_uuid"] == "pytorch/pytorch" and "22/tcp" not in row["ports"]
        # Where `vastai ssh-url` and the inventory look for a jupyter runtype: ssh_port + 1.
        assert ssh(row["ssh_port"] + 1, keys["late"][0]).returncode == 0
        unknown = api.call("PUT", "/api/v0/asks/%d/" % A100, json=dict(template_body, template_hash_id="0" * 32))
        assert unknown.status_code == 400 and "template_hash_id" in unknown.json()["msg"]
    finally:
        api.destroy(from_template)
        api.destroy(jupyter)


def test_a_bid_that_cannot_start_with_cancel_unavail_is_refused_410(emulator, api):
    offer = api.ok("POST", "/api/v0/bundles/", json={"type": "bid", "id": {"eq": RTX_3090}})["offers"][0]
    before = len(emulator.state()["instances"])
    response = api.call("PUT", "/api/v0/asks/%d/" % RTX_3090, json=dict(
        CLI_CREATE_BODY, image=IMAGE, disk=10.0, price=round(offer["min_bid"] / 2, 4), cancel_unavail=True))
    assert (response.status_code, response.json()["error"]) == (410, "no_such_ask")
    assert len(emulator.state()["instances"]) == before
    assert RTX_3090 in [o["id"] for o in api.ok("POST", "/api/v0/bundles/", json={})["offers"]]


def test_create_refused_once_the_credit_runs_out(emulator, api):
    emulator.set_faults(credit=0)
    try:
        assert api.ok("GET", "/api/v0/users/current")["credit"] == 0
        response = api.call("PUT", "/api/v0/asks/%d/" % RTX_3090, json=dict(CLI_CREATE_BODY, image=IMAGE, disk=10.0))
        body = response.json()
        assert (response.status_code, body["success"], body["error"]) == (400, False, "insufficient_credit")
        assert "insufficient_credit" in body["msg"]
        assert RTX_3090 in [o["id"] for o in api.ok("POST", "/api/v0/bundles/", json={})["offers"]]
    finally:
        emulator.set_faults(credit=25)
    assert api.ok("GET", "/api/v0/users/current")["credit"] == 25


def test_search_refuses_unknown_order_columns(api):
    response = api.call("POST", "/api/v0/bundles/", json=dict(GUIDE_QUERY, order=[["dph_totl", "asc"]]))
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")
    assert "dph_totl" in response.json()["msg"]
    assert api.call("POST", "/api/v0/bundles/", json=dict(GUIDE_QUERY, order=[["dph", "asc"]])).status_code == 200


def test_bid_below_min_bid_waits_unscheduled(emulator, api):
    offer = api.ok("POST", "/api/v0/bundles/", json={"type": "bid", "id": {"eq": RTX_3090}})["offers"][0]
    instance_id = api.rent(RTX_3090, price=round(offer["min_bid"] / 2, 4))
    try:
        row = api.show(instance_id)
        assert (row["actual_status"], row["intended_status"], row["cur_state"], row["is_bid"]) == (
            "scheduling", "running", "stopped", True)
        assert "unavailable" in row["status_msg"] and row["ports"] is None
        billed = wait_for_ledger(emulator, instance_id, lambda entry: entry["storage_cost"] > 0)
        assert (billed["running_seconds"], billed["gpu_cost"]) == (0, 0)
        assert not [name for name in emulator.containers() if name.startswith("vastemu-%d-" % instance_id)]
    finally:
        api.destroy(instance_id)


# ---- auth and retired endpoints -------------------------------------------------------------------------------

def test_wrong_or_missing_key_gets_401(emulator, api):
    bad = requests.post(emulator.url + "/api/v0/bundles/", json={}, headers={"Authorization": "Bearer nope"},
                        timeout=30)
    assert (bad.status_code, bad.json()) == (401, AUTH_ERROR)
    missing = requests.get(emulator.url + "/api/v0/users/current", timeout=30)
    assert (missing.status_code, missing.json()) == (401, AUTH_ERROR)
    by_param = requests.get(emulator.url + "/api/v0/users/current", params={"api_key": emulator.api_key}, timeout=30)
    assert by_param.status_code == 200
    assert emulator.api_key not in by_param.text and "api_key" not in by_param.json()


def test_v0_instance_list_is_gone(api):
    response = api.call("GET", "/api/v0/instances/", params={"owner": "me"})
    assert response.status_code == 410
    assert response.json()["msg"] == "Use /api/v1/instances/ instead"


# ---- the shared instance --------------------------------------------------------------------------------------

def test_rented_instance_runs_and_takes_ssh_direct_and_through_the_proxy(emulator, api, keys, rented):
    row = api.wait_for(rented, "running")
    port = direct_port(row)
    assert row["ports"] == {"22/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)}]}
    assert row["image_runtype"] == "ssh_direc ssh_proxy"
    assert row["ssh_port"] != port  # the proxy is its own endpoint, forwarding to the same sshd
    proxied = ssh(row["ssh_port"], keys["account"][0], "hostname")
    direct = ssh(port, keys["account"][0], "hostname")
    assert proxied.returncode == 0 and direct.returncode == 0, proxied.stderr + direct.stderr
    assert proxied.stdout == direct.stdout  # one container behind both endpoints
    assert (row["ssh_host"], row["public_ipaddr"], row["label"]) == ("127.0.0.1", "127.0.0.1", "shared")
    assert row["extra_env"] == [["VOLT_MODE", "test"], ["-p 8080:8080", "1"]]
    assert isinstance(row["start_date"], float) and row["disk_space"] == 250.0
    assert row["dph_total"] == pytest.approx(row["dph_base"] + row["storage_cost"] * 250 / 720)
    # Like Vast, onstart runs in the background once the container is up: wait for its output.
    result = ssh(port, keys["account"][0], "for i in $(seq 50); do [ -s /root/onstart.out ] && break; sleep 0.2; done;"
                                           " cat /root/onstart.out")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "onstart-ran"
    assert any(name.startswith("vastemu-%d-" % rented) for name in emulator.containers())
    assert CHEAPEST_MATCH not in [o["id"] for o in api.ok("POST", "/api/v0/bundles/", json=GUIDE_QUERY)["offers"]]
    # Billing runs while the instance is running, and shows as spent credit.
    billed = wait_for_ledger(emulator, rented, lambda entry: entry["gpu_cost"] > 0 and entry["storage_cost"] > 0)
    assert billed["cost"] == pytest.approx(billed["gpu_cost"] + billed["storage_cost"], abs=1e-6)
    assert billed["storage_dph"] == pytest.approx(row["storage_cost"] * 250 / 720)
    assert billed["gpu_dph"] == pytest.approx(row["dph_base"])
    assert emulator.state()["ledger"]["total"] > 0
    assert api.ok("GET", "/api/v0/users/current")["credit"] < 25.0


def test_attached_keys_work(api, keys, rented):
    port = direct_port(api.wait_for(rented, "running"))
    assert ssh(port, keys["attached"][0]).returncode == 0
    assert api.ok("POST", "/api/v0/instances/%d/ssh/" % rented, json={"ssh_key": keys["late"][1]})["success"]
    assert ssh(port, keys["late"][0]).returncode == 0
    bad = api.call("POST", "/api/v0/ssh/", json={"ssh_key": "not a key"})
    assert (bad.status_code, bad.json()["error"]) == (400, "no_ssh_key")


def test_stuck_loading_and_v1_list_paging(emulator, api, rented):
    emulator.set_faults(stuck_loading=2)
    stuck = [api.rent(RTX_4090, label="stuck-a"), api.rent(RTX_3090)]
    time.sleep(2.5)  # long enough for sshd to answer; a stuck instance must still not show as running
    for instance_id in stuck:
        row = api.show(instance_id)
        assert row["actual_status"] == "loading" and row["ports"] is None
        assert "Pulling" in row["status_msg"]
    assert emulator.state()["faults"]["stuck_loading"] == 0

    mine = json.dumps({"id": {"in": [rented] + stuck}})
    first = api.ok("GET", "/api/v1/instances/", params={
        "limit": 2, "select_filters": mine, "order_by": json.dumps([{"col": "id", "dir": "asc"}])})
    assert (first["instances_found"], first["total_instances"]) == (2, 3)
    assert first["label_counts"] == {"shared": 1, "stuck-a": 1, "": 1}
    second = api.ok("GET", "/api/v1/instances/", params={
        "limit": 2, "select_filters": mine, "after_token": first["next_token"]})
    assert second["next_token"] is None
    assert [row["id"] for row in first["instances"] + second["instances"]] == sorted([rented] + stuck)

    unlabeled_filter = json.dumps({"label": {"in": [None]}, "id": {"in": stuck}})
    unlabeled = api.ok("GET", "/api/v1/instances/", params={
        "select_filters": unlabeled_filter, "select_cols": json.dumps(["label"])})
    assert unlabeled["instances"] == [{"label": None, "id": stuck[1]}]
    computed = api.call("GET", "/api/v1/instances/", params={"select_filters": json.dumps({"dph_total": {"lt": 1}})})
    assert (computed.status_code, computed.json()) == (400, {
        "success": False, "error": "invalid_request", "msg": "Error in query parameters: dph_total is not a valid "
                                                             "search key"})
    token = api.call("GET", "/api/v1/instances/", params={"after_token": "garbage!"})
    assert (token.status_code, token.json()["error"]) == (400, "invalid_token")
    for instance_id in stuck:
        api.ok("DELETE", "/api/v0/instances/%d/" % instance_id, json={})


# ---- faults ---------------------------------------------------------------------------------------------------

# ---- the instance's own key (CONTAINER_API_KEY) ------------------------------------------------------------------

KEYED_OFFER = 24584649  # offers no other test rents or lists by id
LIFECYCLE_OFFER = 24592568
NOT_AUTHORIZED = {"success": False, "error": "not_authorized", "msg": "Not authorized for this instance or endpoint"}
SOME_PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOw6gmXCJQoBmqtEXHXuBNSjWbvIfc9e3M c"


def rent_with_key(api, offer_id):
    """(instance id, the create reply's instance_api_key), once the instance runs."""
    payload = dict(CLI_CREATE_BODY, image=IMAGE, env={}, disk=10.0, label="keyed", onstart=None)
    reply = api.ok("PUT", "/api/v0/asks/%d/" % offer_id, json=payload)
    api.wait_for(reply["new_contract"], "running")
    return reply["new_contract"], reply["instance_api_key"]


def container_environment(emulator, instance_id):
    """The environment the container's processes start with (on Vast, PID 1's; sshd here rewrites its own)."""
    (container,) = [name for name in emulator.containers() if name.startswith("vastemu-%d-" % instance_id)]
    raw = subprocess.run(["docker", "exec", container, "env", "-0"], capture_output=True, check=True).stdout
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


@pytest.fixture(scope="module")
def keyed(api):
    return rent_with_key(api, KEYED_OFFER)


def test_each_container_holds_its_instance_id_and_own_key(emulator, api, keyed):
    instance_id, key = keyed
    environment = container_environment(emulator, instance_id)
    assert environment["CONTAINER_ID"] == str(instance_id)
    assert environment["CONTAINER_API_KEY"] == key and len(key) == 64 and key != emulator.api_key
    assert emulator.api_key not in json.dumps(environment)


@pytest.mark.parametrize("method, path, body", [
    ("GET", "/api/v1/instances/", None),
    ("POST", "/api/v0/bundles/", GUIDE_QUERY),
    ("PUT", "/api/v0/asks/%d/" % RTX_3090, dict(CLI_CREATE_BODY, image=IMAGE, disk=10.0)),
    ("GET", "/api/v0/ssh/", None),
    ("POST", "/api/v0/ssh/", {"ssh_key": SOME_PUBLIC_KEY}),
    ("GET", "/api/v0/users/current/", None),
    ("PUT", "/api/v0/instances/reboot/{own}/", {}),
    ("POST", "/api/v0/instances/{own}/ssh/", {"ssh_key": SOME_PUBLIC_KEY}),
    ("PUT", "/api/v0/instances/{own}/", {"label": "renamed"}),
    ("PUT", "/api/v0/instances/{own}/", {"state": "stopped", "label": "renamed"}),
    ("GET", "/api/v0/instances/{other}/", None),
    ("PUT", "/api/v0/instances/{other}/", {"state": "stopped"}),
    ("DELETE", "/api/v0/instances/{other}/", {}),
])
def test_the_instance_key_is_refused_for_anything_but_its_own_instance(emulator, api, keyed, rented, method, path,
                                                                       body):
    instance_id, key = keyed

    def account_view():
        rows = {i: api.show(i) for i in (instance_id, rented)}
        return ({i: (row["label"], row["intended_status"]) for i, row in rows.items()},
                api.ok("GET", "/api/v1/instances/")["total_instances"], api.call("GET", "/api/v0/ssh/").json())

    before = account_view()
    url = path.format(own=instance_id, other=rented)
    refused = Api(emulator.url, key).call(method, url, json=body)
    assert (refused.status_code, refused.json()) == (403, NOT_AUTHORIZED), url
    assert account_view() == before, "a refused request changed nothing"


def test_the_instance_key_shows_starts_stops_and_destroys_its_own_instance(emulator, api):
    instance_id, key = rent_with_key(api, LIFECYCLE_OFFER)
    own = Api(emulator.url, key)
    assert own.show(instance_id)["id"] == instance_id
    # What `vastai stop instance $CONTAINER_ID --api-key $CONTAINER_API_KEY` sends, then start.
    assert own.ok("PUT", "/api/v0/instances/%d/" % instance_id, json={"state": "stopped"}) == {"success": True}
    assert api.wait_for(instance_id, "exited")["intended_status"] == "stopped"
    assert own.ok("PUT", "/api/v0/instances/%d/" % instance_id, json={"state": "running"}) == {"success": True}
    api.wait_for(instance_id, "running")
    own.destroy(instance_id)
    assert api.show(instance_id) is None
    # The key went with its instance.
    gone = own.call("GET", "/api/v0/instances/%d/" % instance_id, params={"owner": "me"})
    assert (gone.status_code, gone.json()) == (401, AUTH_ERROR)


def test_rate_limit_and_server_error_faults(emulator, api):
    emulator.set_faults(rate_limit=2, server_error=1)
    statuses = [api.call("GET", "/api/v0/users/current") for _attempt in range(4)]
    assert [r.status_code for r in statuses] == [429, 429, 503, 200]
    assert statuses[0].json() == {"detail": "API requests too frequent endpoint threshold=4.5"}
    assert statuses[2].headers["Content-Type"] == "text/html" and b"<html>" in statuses[2].content
    logged = [entry["status"] for entry in emulator.state()["requests"] if entry["path"] == "/api/v0/users/current"]
    assert logged[-4:] == [429, 429, 503, 200]


def test_offer_taken_faults(emulator, api):
    emulator.set_faults(offer_taken=[H100])
    # Still listed: the race is lost at rent time, after the search.
    assert H100 in [offer["id"] for offer in api.ok("POST", "/api/v0/bundles/", json={})["offers"]]
    taken = api.call("PUT", "/api/v0/asks/%d/" % H100, json={"image": "x", "disk": 10})
    assert (taken.status_code, taken.json()) == (404, {
        "success": False, "error": "invalid_args", "ask_id": H100,
        "msg": "error 404/3603: no_such_ask Instance type by id %d is not available." % H100})
    assert H100 not in [offer["id"] for offer in api.ok("POST", "/api/v0/bundles/", json={})["offers"]]
    emulator.set_faults(offer_taken=1)
    raced = api.call("PUT", "/api/v0/asks/%d/" % A100, json={"image": "x", "disk": 10})
    assert raced.status_code == 404 and "no_such_ask" in raced.json()["msg"]
    assert emulator.state()["faults"]["offer_taken_count"] == 0
    small = api.call("PUT", "/api/v0/asks/%d/" % RTX_4090, json={"image": "x", "disk": 4})
    assert (small.status_code, small.json()["error"]) == (400, "invalid_args")


@pytest.mark.parametrize("form, offer_id, status, error, code", [
    ("404", 24640082, 404, "invalid_args", "error 404/3603: "),
    ("410", 24648001, 410, "no_such_ask", "error 410/3907: "),
    ("400", 24663839, 400, "no_such_ask", "error 400/3603: "),
    ("200", 24679677, 200, "no_such_ask", ""),
])
def test_offer_gone_in_each_form(emulator, api, form, offer_id, status, error, code):
    emulator.set_faults(offer_taken={"offers": [offer_id], "form": form})
    try:
        taken = api.call("PUT", "/api/v0/asks/%d/" % offer_id, json=dict(CLI_CREATE_BODY, image=IMAGE))
        body = taken.json()
        assert (taken.status_code, body["success"], body["error"], body["ask_id"]) == (status, False, error, offer_id)
        assert body["msg"].startswith(code + "no_such_ask Instance type ")
        again = api.call("PUT", "/api/v0/asks/%d/" % offer_id, json=dict(CLI_CREATE_BODY, image=IMAGE))
        assert again.status_code == status  # now really rented by someone else: the same form
    finally:
        emulator.set_faults(offer_taken={"form": "404"})


def test_overprice_and_boot_delay(emulator, api):
    listed = api.ok("POST", "/api/v0/bundles/", json={"id": {"eq": RTX_4090}, "allocated_storage": 10})["offers"][0]
    emulator.set_faults(overprice={"count": 1, "factor": 1.5}, boot_delay=3)
    instance_id = api.rent(RTX_4090, disk=10)
    try:
        assert api.show(instance_id)["dph_total"] == pytest.approx(listed["dph_total"] * 1.5)
        time.sleep(2)  # sshd is up by now, but the boot delay holds the instance in loading
        assert api.show(instance_id)["actual_status"] in (None, "created", "loading")
        api.wait_for(instance_id, "running")
    finally:
        emulator.set_faults(boot_delay=0)
        api.ok("DELETE", "/api/v0/instances/%d/" % instance_id, json={})


# ---- lifecycle of the shared instance -------------------------------------------------------------------------

ONSTART_RUNS = "for i in $(seq 50); do [ $(wc -l < /root/onstart.out) -ge %d ] && break; sleep 0.2; done; " \
               "cat /root/onstart.out"


def test_stop_bills_storage_only_and_start_runs_onstart_again(emulator, api, keys, rented):
    api.wait_for(rented, "running")
    assert ssh(api.show(rented)["ssh_port"], keys["account"][0], ONSTART_RUNS % 1).stdout.split() == ["onstart-ran"]
    api.ok("PUT", "/api/v0/instances/%d/" % rented, json={"state": "stopped"})
    row = api.show(rented)
    assert (row["actual_status"], row["intended_status"], row["cur_state"], row["ports"]) == (
        "exited", "stopped", "stopped", None)
    stopped = ledger_row(emulator, rented)
    later = wait_for_ledger(emulator, rented, lambda entry: entry["storage_cost"] > stopped["storage_cost"])
    assert (later["running_seconds"], later["gpu_cost"]) == (stopped["running_seconds"], stopped["gpu_cost"])
    api.ok("PUT", "/api/v0/instances/%d/" % rented, json={"state": "running", "label": "restarted"})
    row = api.wait_for(rented, "running")
    assert row["label"] == "restarted"
    assert ssh(row["ssh_port"], keys["account"][0]).returncode == 0  # the proxy port survives a restart
    assert ssh(direct_port(row), keys["attached"][0]).returncode == 0  # attached keys survive a restart
    # Vast runs the create body's onstart on every container start, after sshd is up.
    assert ssh(row["ssh_port"], keys["account"][0], ONSTART_RUNS % 2).stdout.split() == ["onstart-ran"] * 2


def test_preempt_stopped_keeps_the_disk_and_starts_again(emulator, api, keys, rented):
    row = api.wait_for(rented, "running")
    runs = len(ssh(row["ssh_port"], keys["account"][0], ONSTART_RUNS % 1).stdout.split())
    assert runs >= 1
    emulator.preempt(rented)  # kind "stopped" by default
    row = api.show(rented)
    assert (row["actual_status"], row["intended_status"], row["cur_state"]) == ("exited", "running", "stopped")
    assert "preempted" in row["status_msg"] and row["ports"] is None
    assert any(name.startswith("vastemu-%d-" % rented) for name in emulator.containers())
    preempted = ledger_row(emulator, rented)
    wait_for_ledger(emulator, rented, lambda entry: entry["storage_cost"] > preempted["storage_cost"])
    assert ledger_row(emulator, rented)["gpu_cost"] == preempted["gpu_cost"]
    api.ok("PUT", "/api/v0/instances/%d/" % rented, json={"state": "running"})
    row = api.wait_for(rented, "running")
    # The disk survived: the file the onstart wrote before the preemption is still there.
    kept = ssh(row["ssh_port"], keys["account"][0], ONSTART_RUNS % (runs + 1))
    assert kept.stdout.split() == ["onstart-ran"] * (runs + 1), kept.stderr


def test_proxy_only_runtype_then_host_lost(emulator, api, keys):
    instance_id = api.rent(RTX_4090, runtype="ssh_proxy")
    try:
        api.ok("POST", "/api/v0/instances/%d/ssh/" % instance_id, json={"ssh_key": keys["late"][1]})
        row = api.wait_for(instance_id, "running")
        assert row["image_runtype"] == "ssh_proxy" and "22/tcp" not in row["ports"]
        assert ssh(row["ssh_port"], keys["late"][0]).returncode == 0

        emulator.preempt(instance_id, kind="host_lost")
        row = api.show(instance_id)
        assert (row["actual_status"], row["intended_status"], row["ports"]) == ("offline", "running", None)
        assert not [name for name in emulator.containers() if name.startswith("vastemu-%d-" % instance_id)]
        assert ssh(row["ssh_port"], keys["late"][0]).returncode != 0
        # A start is taken but the machine never returns.
        api.ok("PUT", "/api/v0/instances/%d/" % instance_id, json={"state": "running"})
        assert api.show(instance_id)["actual_status"] == "offline"
        lost = ledger_row(emulator, instance_id)
        later = wait_for_ledger(emulator, instance_id, lambda entry: entry["storage_cost"] > lost["storage_cost"])
        assert later["gpu_cost"] == lost["gpu_cost"]
    finally:
        api.destroy(instance_id)
    assert api.show(instance_id) is None
    final = ledger_row(emulator, instance_id)
    # Billing stopped at the destroy: a later read (milliseconds later, and the ledger counts milliseconds) agrees.
    assert final["destroyed"] and ledger_row(emulator, instance_id)["rented_seconds"] == final["rented_seconds"]


def test_state_change_refuses_unknown_keys_next_to_state(api, rented):
    before = api.show(rented)["intended_status"]
    wanted = "running" if before == "stopped" else "stopped"
    response = api.call("PUT", "/api/v0/instances/%d/" % rented, json={"state": wanted, "force": True})
    assert (response.status_code, response.json()["error"]) == (400, "invalid_args")
    assert "unexpected field force" in response.json()["msg"]
    assert api.show(rented)["intended_status"] == before


def test_destroy_removes_the_container(emulator, api, rented):
    assert api.ok("DELETE", "/api/v0/instances/%d/" % rented, json={}) == {
        "success": True, "msg": "Instance destroyed successfully"}
    assert api.show(rented) is None
    assert not [name for name in emulator.containers() if name.startswith("vastemu-%d-" % rented)]
    again = api.call("DELETE", "/api/v0/instances/%d/" % rented, json={})
    assert (again.status_code, again.json()) == (404, {
        "success": False, "error": "no_such_instance", "msg": "Instance not found"})
    assert CHEAPEST_MATCH in [o["id"] for o in api.ok("POST", "/api/v0/bundles/", json=GUIDE_QUERY)["offers"]]


def test_key_never_logged(emulator, state_dir):
    state = json.dumps(emulator.state())
    assert emulator.api_key not in state
    assert all("?" not in entry["path"] for entry in emulator.state()["requests"])
    assert emulator.api_key not in (state_dir / "emulator.log").read_text()


def test_destroy_of_an_unknown_id_in_each_form(emulator, api):
    gone = api.call("DELETE", "/api/v0/instances/%d/" % 1, json={})
    assert (gone.status_code, gone.json()["error"]) == (404, "no_such_instance")
    emulator.set_faults(destroy_gone_form="400")
    try:
        gone = api.call("DELETE", "/api/v0/instances/%d/" % 1, json={})
        assert (gone.status_code, gone.json()) == (400, {"success": False, "error": "invalid_args",
                                                         "msg": "invalid instance_id"})
    finally:
        emulator.set_faults(destroy_gone_form="404")


def test_reset_clears_everything(emulator, api):
    api.rent(RTX_3090)
    emulator.set_faults(rate_limit=5)
    emulator.reset()
    state = emulator.state()
    assert state["instances"] == [] and state["faults"]["rate_limit"] == 0 and state["ledger"]["total"] == 0
    assert emulator.containers() == []
    assert api.call("GET", "/api/v0/ssh/").status_code == 404


def test_sigterm_removes_containers_and_exits_zero(tmp_path):
    with running_emulator(str(tmp_path)) as other:
        Api(other.url, other.api_key).rent(RTX_3090)
        deadline = time.time() + 20
        while not other.containers() and time.time() < deadline:
            time.sleep(0.2)
        assert other.containers()
        other.process.terminate()
        assert other.process.wait(timeout=30) == 0
        assert other.containers() == []

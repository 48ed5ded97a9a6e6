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
        payload = {"client_id": "me", "image": "voltx-vastai-host:latest", "env": {}, "price": None, "disk": 10.0,
                   "label": None, "onstart": None, "runtype": "ssh_direc ssh_proxy", "cancel_unavail": False}
        payload.update(body)
        return self.ok("PUT", "/api/v0/asks/%d/" % offer_id, json=payload)["new_contract"]

    def wait_for(self, instance_id, status, timeout=40):
        deadline = time.time() + timeout
        while time.time() < deadline:
            row = self.show(instance_id)
            if row["actual_status"] == status:
                return row
            time.sleep(0.3)
        raise AssertionError("instance %d never reached %s: %s" % (instance_id, status, row))


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
    instance_id = api.rent(CHEAPEST_MATCH, disk=250.0, label="shared", env={"VOLT_MODE": "test", "-p 8080:8080": "1"},
                           onstart="echo onstart-ran > /root/onstart.out")
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
    assert ids(no_such_column={"eq": "x"}) == everything  # unknown columns are ignored, like the real server
    assert ids(gpu_name={"in": ["H100 SXM", "A100 SXM4"]}, num_gpus={"eq": "1"}) == {H100, A100}
    # The disk part of the price: 250 GB pushes the $0.197 offer (storage $0.20/GB/month) over $0.20/h.
    assert ids(**{**GUIDE_QUERY, "allocated_storage": 250}) == set(GUIDE_MATCHES_BY_SCORE) - {24537135}
    bid = api.ok("POST", "/api/v0/bundles/", json={"type": "bid", "id": {"eq": RTX_3090}})["offers"][0]
    assert bid["is_bid"] and bid["dph_total"] == pytest.approx(bid["min_bid"] + bid["storage_cost"] * 5 / 720)


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

def test_rented_instance_runs_and_takes_ssh(emulator, api, keys, rented):
    row = api.wait_for(rented, "running")
    port = row["ssh_port"]
    assert row["ports"] == {"22/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)}]}
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
    time.sleep(0.2)
    ledger = emulator.state()["ledger"]
    assert ledger["instances"][str(rented)]["cost"] > 0 and ledger["total"] > 0
    assert api.ok("GET", "/api/v0/users/current")["credit"] < 25.0


def test_attached_keys_work(api, keys, rented):
    port = api.wait_for(rented, "running")["ssh_port"]
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

def test_stop_and_start(emulator, api, keys, rented):
    api.ok("PUT", "/api/v0/instances/%d/" % rented, json={"state": "stopped"})
    row = api.show(rented)
    assert (row["actual_status"], row["intended_status"], row["cur_state"], row["ports"]) == (
        "exited", "stopped", "stopped", None)
    seconds = emulator.state()["ledger"]["instances"][str(rented)]["running_seconds"]
    time.sleep(0.5)
    assert emulator.state()["ledger"]["instances"][str(rented)]["running_seconds"] == seconds
    api.ok("PUT", "/api/v0/instances/%d/" % rented, json={"state": "running", "label": "restarted"})
    row = api.wait_for(rented, "running")
    assert row["label"] == "restarted"
    assert ssh(row["ssh_port"], keys["account"][0]).returncode == 0
    assert ssh(row["ssh_port"], keys["attached"][0]).returncode == 0  # attached keys survive a restart


def test_preempt_shows_as_vast_does(emulator, api, rented):
    emulator.preempt(rented)
    row = api.show(rented)
    assert (row["actual_status"], row["intended_status"], row["cur_state"]) == ("exited", "running", "stopped")
    assert "preempted" in row["status_msg"]


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

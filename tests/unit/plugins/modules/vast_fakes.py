"""Fakes (module, clock, Vast.ai) for driving the module classes without Ansible's process plumbing or HTTP."""

from __future__ import annotations

from ansible_collections.voltx.vastai.plugins.module_utils._client import (
    RetryPolicy,
    VastOfferUnavailableError,
    VastRateLimitError,
    VastTransportError,
)

ED = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq0Ww3fTQv6Yz5mM2m8mZ2n5nLr4cX1bBq9Xk0n1J3x"


class ModuleExit(Exception):
    def __init__(self, result):
        super(ModuleExit, self).__init__(result)
        self.result = result


class ModuleFail(Exception):
    def __init__(self, result):
        super(ModuleFail, self).__init__(result.get("msg"))
        self.result = result


class FakeModule:
    def __init__(self, spec, params, check_mode=False):
        self.params = dict((name, opt.get("default")) for name, opt in spec.items())
        self.params.update(params)
        self.check_mode = check_mode
        self.no_log_values = set()
        self.warnings = []

    def fail_json(self, **kwargs):
        raise ModuleFail(kwargs)

    def exit_json(self, **kwargs):
        raise ModuleExit(kwargs)

    def warn(self, msg):
        self.warnings.append(msg)


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += max(seconds, 0.001)


class FakeVast:
    """In-memory Vast.ai: offers, instances driven by scripted status sequences, keys, a call log."""

    def __init__(self, offers=None, clock=None):
        self.offers = list(offers or [])
        self.instances = {}
        self.keys = []
        self.calls = []
        self.next_id = 500
        # offer_id -> list of "gone" | "lost" | "created_then_lost" | "created_late" | "rate_limited" | "ok"
        self.create_behaviour = {}
        self.get_errors = []           # exceptions raised by the next get_instance calls, in order
        self.hidden_finds = 0          # find_instances_by_label calls that do not see a "created_late" instance yet
        self.statuses = {}             # offer_id -> list of actual_status values returned by successive gets
        self.contract_price = {}       # offer_id -> dph_total of the created instance
        self.status_msgs = {}          # offer_id -> status_msg of the created instance
        self.clock = clock
        self.retry_policy = RetryPolicy(attempts=1, jitter=0)

    def log(self, *call):
        self.calls.append(call)

    def verbs(self):
        return [c[0] for c in self.calls]

    # offers
    def search_offers(self, query):
        self.log("search_offers", query)
        return [dict(o) for o in self.offers]

    # instances
    def _new_instance(self, offer_id, body):
        self.next_id += 1
        offer = next((o for o in self.offers if o["id"] == offer_id), {"id": offer_id})
        inst = {"id": self.next_id, "label": body["label"], "actual_status": None, "intended_status": "running",
                "dph_total": self.contract_price.get(offer_id, offer.get("dph_total")),
                "gpu_name": offer.get("gpu_name"), "num_gpus": offer.get("num_gpus"), "machine_id": 7,
                "start_date": 1.0, "public_ipaddr": "203.0.113.7", "ssh_host": "ssh5.vast.ai",
                "ssh_port": 30000 + self.next_id, "ports": None, "_offer": offer_id,
                "status_msg": self.status_msgs.get(offer_id), "image_uuid": body.get("image"),
                "_statuses": list(self.statuses.get(offer_id, ["loading", "running"]))}
        self.instances[inst["id"]] = inst
        return inst["id"]

    def create_instance(self, offer_id, body):
        self.log("create_instance", offer_id, body)
        plan = self.create_behaviour.get(offer_id, [])
        action = plan.pop(0) if plan else "ok"
        if action == "gone":
            raise VastOfferUnavailableError("offer %s gone" % offer_id, status=404, error="no_such_ask")
        if action == "lost":
            raise VastTransportError("Connection to Vast.ai timed out", maybe_created=True)
        if action == "unavailable":  # the client's retries through a 503 outage ran out, looking the label up
            exc = VastTransportError("Vast.ai API error on PUT /api/v0/asks/%d/ (HTTP 503): Service Temporarily "
                                     "Unavailable" % offer_id, status=503)
            exc.unavailable = True
            raise exc
        if action == "rate_limited":
            raise VastRateLimitError("API requests too frequent", status=429)
        iid = self._new_instance(offer_id, body)
        if action in ("created_then_lost", "created_late"):
            if action == "created_late":
                self.hidden_finds = 3  # the service still works on the create while the client looks
            raise VastTransportError("Connection to Vast.ai timed out", maybe_created=True)
        return iid

    def _view(self, inst):
        out = dict((k, v) for k, v in inst.items() if not k.startswith("_"))
        return out

    def get_instance(self, iid):
        self.log("get_instance", iid)
        if self.get_errors:
            raise self.get_errors.pop(0)
        inst = self.instances.get(iid)
        if inst is None:
            return None
        if inst["_statuses"]:
            inst["actual_status"] = inst["_statuses"].pop(0)
        if inst["actual_status"] == "running":
            inst["ports"] = {"22/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(40000 + iid)}]}
        return self._view(inst)

    def list_instances(self, select_filters=None):
        self.log("list_instances", select_filters)
        return [self._view(i) for i in sorted(self.instances.values(), key=lambda i: i["id"])]

    def find_instances_by_label(self, label):
        self.log("find_instances_by_label", label)
        if self.hidden_finds:
            self.hidden_finds -= 1
            return []
        return [self._view(i) for i in sorted(self.instances.values(), key=lambda i: i["id"]) if i["label"] == label]

    def destroy_instance(self, iid):
        self.log("destroy_instance", iid)
        return self.instances.pop(iid, None) is not None

    def set_instance_state(self, iid, state):
        self.log("set_instance_state", iid, state)
        inst = self.instances[iid]
        inst["intended_status"] = state
        inst["actual_status"] = "running" if state == "running" else "exited"
        inst["_statuses"] = []
        return {"success": True}

    # keys
    def list_ssh_keys(self):
        self.log("list_ssh_keys")
        return [dict(k) for k in self.keys]

    def add_ssh_key(self, key):
        self.log("add_ssh_key", key)
        entry = {"id": len(self.keys) + 1, "key": key, "public_key": key, "created_at": "now"}
        self.keys.append(entry)
        return dict(entry)

    def delete_ssh_key(self, key_id):
        self.log("delete_ssh_key", key_id)
        before = len(self.keys)
        self.keys = [k for k in self.keys if k["id"] != key_id]
        return len(self.keys) != before

    def attach_ssh_key(self, iid, key):
        self.log("attach_ssh_key", iid, key)
        return {"success": True}


def offer(oid, price, **over):
    data = {"id": oid, "gpu_name": "RTX 5090", "num_gpus": 1, "cpu_cores_effective": 128.0, "cpu_ram": 257000,
            "disk_space": 1800.0, "cuda_max_good": 12.9, "dph_total": price, "reliability": 0.99,
            "verification": "verified", "external": False, "rentable": True}
    data.update(over)
    return data

"""The emulated account: instances (backed by containers), SSH keys, faults and the cost ledger.

Every public method either returns the JSON reply or raises ApiError carrying the reply Vast would send.
One lock guards the state; docker calls run outside it (they take seconds) and each instance carries a
generation counter so a boot watcher notices that a stop, start or destroy overtook it.
"""

import base64
import hmac
import json
import re
import secrets
import threading
import time
from datetime import datetime, timezone

from . import offers as offer_search
from .containers import DockerError, ssh_banner_ready
from .proxy import TcpProxy

INITIAL_CREDIT = 25.0
ENV_NAME_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
BOOT_TIMEOUT = 120.0
# Offer columns an instance row repeats.
OFFER_COLUMNS = (
    "machine_id", "host_id", "bundle_id", "gpu_name", "num_gpus", "gpu_arch", "gpu_ram", "gpu_frac", "gpu_lanes",
    "gpu_mem_bw", "compute_cap", "cuda_max_good", "driver_version", "cpu_name", "cpu_arch", "cpu_cores",
    "cpu_cores_effective", "cpu_ram", "cpu_ghz", "disk_name", "disk_bw", "inet_up", "inet_down", "inet_up_cost",
    "inet_down_cost", "dph_base", "storage_cost", "min_bid", "reliability2", "verification", "rentable", "external",
    "hosting_type", "static_ip", "geolocation", "os_version", "mobo_name", "pci_gen", "pcie_bw", "bw_nvlink", "dlperf",
    "total_flops", "score", "direct_port_count", "end_date", "credit_discount_max", "vram_costperhour", "logo", "webpage",
)
# Columns the v1 list can filter on; the rest are computed server-side and refused.
FILTERABLE_COLUMNS = {"id", "actual_status", "intended_status", "cur_state", "next_state", "label", "gpu_name",
                      "verification", "machine_id", "host_id", "image_uuid", "is_bid", "template_id", "start_date"}
PAGE_SIZE = 25
PULL_PROGRESS = "Pulling image: 3f4ac1d2e8b7: Downloading [=======>          ]  1.27GB/3.02GB"
# Docker's reference grammar (distribution/reference): [host[:port]/]path[:tag][@digest], path lowercase.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*"
IMAGE_REFERENCE = re.compile(  # the first component is a registry only with a '.' or a port, or as localhost
    r"(?:(?:%s\.%s|localhost)(?::[0-9]+)?/|%s:[0-9]+/)?%s(?:/%s)*(?::[\w][\w.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?" % (
        _HOST, _HOST, _HOST, _COMPONENT, _COMPONENT))
# Vast's own tag, resolved server-side to the newest build (the CLI's example image uses it).
AUTOMATIC_TAG = ":@vastai-automatic-tag"
# Templates (PUT /asks/ with template_hash_id): the CLI's example hash, a base-image template in SSH launch mode.
TEMPLATES = {
    "661d064bbda1f2a133816b6d55da07c3": {
        "id": 108234, "name": "VastAI Base Image", "image": "vastai/base-image:@vastai-automatic-tag",
        "runtype": "ssh_direc ssh_proxy", "env": {"-p 8080:8080": "1"}, "onstart": None},
}
OFFER_GONE_FORMS = ("404", "410", "400", "200")


class ApiError(Exception):
    def __init__(self, status, body, content_type="application/json"):
        super().__init__(status)
        self.status = status
        self.body = body
        self.content_type = content_type


def envelope(status, error, msg, **extra):
    return ApiError(status, dict({"success": False, "error": error, "msg": msg}, **extra))


def invalid_args(msg, **extra):
    return envelope(400, "invalid_args", "error 400/3467: Invalid args: " + msg, **extra)


def image_reference_ok(image):
    if image.endswith(AUTOMATIC_TAG):
        image = image[:-len(AUTOMATIC_TAG)]
    return len(image) <= 255 and IMAGE_REFERENCE.fullmatch(image) is not None


def invalid_instance_id():
    """The other way Vast answers a destroy of an id it does not know (reference section 3.5)."""
    return envelope(400, "invalid_args", "invalid instance_id")


def no_such_instance():
    return envelope(404, "no_such_instance", "Instance not found")


def offer_gone(offer_id, form="404"):
    """The four ways Vast says an offer is gone (reference section 3.2), picked by the offer_taken fault."""
    if form == "410":
        return envelope(410, "no_such_ask", "error 410/3907: no_such_ask Instance type %d is no longer available."
                        % offer_id, ask_id=offer_id)
    msg = "no_such_ask Instance type by id %d is not available." % offer_id
    if form == "400":
        return envelope(400, "no_such_ask", "error 400/3603: " + msg, ask_id=offer_id)
    if form == "200":  # some clients saw a 200 whose body says it failed
        return envelope(200, "no_such_ask", msg, ask_id=offer_id)
    return envelope(404, "invalid_args", "error 404/3603: " + msg, ask_id=offer_id)


# What a short_ram host lets the container use: enough for sshd and a shell, far below any offer's RAM.
SHORT_RAM_MB = 256


class Instance:
    """A contract: the row Vast shows plus what the emulator needs to drive its container."""

    def __init__(self, record, offer_id, container, stuck, attached_keys):
        self.record = record
        self.offer_id = offer_id
        self.container = container
        self.stuck = stuck
        self.attached_keys = attached_keys
        self.generation = 0
        self.destroyed = False
        self.container_created = False
        self.running_since = None
        self.running_seconds = 0.0
        self.created_at = time.time()
        self.destroyed_at = None
        self.gpu_dph = 0.0  # set with the contract price; the storage part is record["storage_total_cost"]
        self.pull_error = None  # the docker pull error of an image that cannot be pulled
        self.unscheduled = False  # a bid below min_bid waits for the GPU and never runs
        self.host_lost = False
        self.memory_mb = None  # a host that gives the container less RAM than its offer promised (fault short_ram)
        self.direct = False
        self.sshd_port = None  # the container's published sshd port while it is started
        self.proxy = None
        self.docker_lock = threading.Lock()  # keeps docker start/stop/rm of one container in request order
        # The instance's own key: the create reply's instance_api_key and CONTAINER_API_KEY in its container.
        self.api_key = secrets.token_hex(32)

    @property
    def id(self):
        return self.record["id"]


class Account:
    def __init__(self, docker, catalog_path=None, missing_images=()):
        self.docker = docker
        self.catalog_path = catalog_path
        self.missing_images = tuple(missing_images)
        self.lock = threading.RLock()
        self.next_instance_id = 28765432
        self.next_key_id = 1234
        self.user_id = 612345
        self._clear()

    def _clear(self):
        self.offers = {offer["id"]: offer for offer in offer_search.load_catalog(self.catalog_path)}
        self.instances = {}
        self.ssh_keys = []
        self.requests = []
        self.deposited = INITIAL_CREDIT  # credit = deposited - spent (the ledger's total)
        self.faults = {"missing_images": list(self.missing_images),
                       "rate_limit": 0, "server_error": 0, "offer_taken": [], "offer_taken_count": 0,
                       "offer_taken_form": "404",
                       "stuck_loading": 0, "short_ram": 0, "overprice": {"count": 0, "factor": 1.0}, "boot_delay": 0.0,
                       "create_delay": 0.0, "destroy_gone_form": "404", "fault_on": ""}

    # ---- offers -------------------------------------------------------------------------------------------

    def search_offers(self, query):
        with self.lock:
            try:
                return {"offers": offer_search.search(list(self.offers.values()), query)}
            except offer_search.QueryError as error:
                raise envelope(400, "invalid_request", str(error))

    def create_instance(self, offer_id, body):
        """PUT /asks/{id}/: validates, takes the offer and starts the container in the background."""
        request = _validate_create(offer_id, body)
        credit = self.current_user()["credit"]
        with self.lock:
            delay = self.faults["create_delay"]
        if delay:  # a slow service: the contract exists, and is listed, only once the create answers
            time.sleep(delay)
        with self.lock:
            offer = self.offers.get(offer_id)
            if offer is not None and not offer["rented"] and self._take_by_fault(offer):
                offer["rented"] = True
            if offer is None or offer["rented"] or not offer["rentable"]:
                raise offer_gone(offer_id, self.faults["offer_taken_form"])
            if request["disk"] > offer["disk_space"]:
                raise invalid_args("disk %s GB is more than the %s GB this offer has" % (
                    request["disk"], offer["disk_space"]), ask_id=offer_id)
            if credit <= 0:
                raise envelope(400, "insufficient_credit", "insufficient_credit: your credit balance is $%.2f; add "
                               "credit (Billing) before renting" % credit, ask_id=offer_id)
            outbid = request["price"] is not None and request["price"] < offer["min_bid"]
            if outbid and request["cancel_unavail"]:  # it cannot start now, and the renter said not to wait
                raise offer_gone(offer_id, "410")
            offer["rented"] = True
            instance = self._new_instance(offer, request)
            self.instances[instance.id] = instance
            generation = instance.generation
        self._spawn(self._boot, instance, generation)
        return {"success": True, "new_contract": instance.id, "instance_api_key": instance.api_key}

    def _take_by_fault(self, offer):
        """offer_taken: the listed offers, or the next N rents, lose the race to another renter.

        A listed offer stays in search results until someone tries to rent it: taken between search and rent.
        """
        if offer["id"] in self.faults["offer_taken"]:
            self.faults["offer_taken"].remove(offer["id"])
            return True
        if self.faults["offer_taken_count"] > 0:
            self.faults["offer_taken_count"] -= 1
            return True
        return False

    def _new_instance(self, offer, request):
        instance_id = self.next_instance_id
        self.next_instance_id += 1
        disk = request["disk"]
        bid = request["price"] is not None
        gpu_hour = request["price"] if bid else offer["dph_base"]
        disk_hour = offer["storage_cost"] * disk / offer_search.HOURS_PER_MONTH
        dph_total = gpu_hour + disk_hour
        overprice = self.faults["overprice"]
        if overprice["count"] > 0:  # the host raised its price between the search and the rent
            overprice["count"] -= 1
            dph_total *= overprice["factor"]
        dph_total = round(dph_total, 7)
        stuck = self.faults["stuck_loading"] > 0
        if stuck:
            self.faults["stuck_loading"] -= 1
        record = {column: offer.get(column) for column in OFFER_COLUMNS}
        breakdown = {"gpuCostPerHour": gpu_hour, "diskHour": round(disk_hour, 7), "totalHour": dph_total,
                     "discountTotalHour": 0, "discountedTotalPerHour": dph_total}
        record.update(
            id=instance_id, actual_status=None, intended_status="running", cur_state="running", next_state="running",
            status_msg=None, label=request["label"], image_uuid=request["image"], image_args=[],
            image_runtype=request["runtype"], extra_env=[[key, str(value)] for key, value in request["env"].items()],
            onstart=request["onstart"], template_id=request["template"].get("id"),
            template_hash_id=request["template_hash_id"], template_name=request["template"].get("name"),
            jupyter_token=secrets.token_hex(32), ssh_host="127.0.0.1", ssh_idx="1", ssh_port=None,
            machine_dir_ssh_port=None, public_ipaddr="127.0.0.1", local_ipaddrs="127.0.0.1 ", ports=None,
            direct_port_start=-1, direct_port_end=-1, gpu_totalram=offer["gpu_total_ram"],
            dph_total=dph_total, storage_total_cost=round(disk_hour, 7), is_bid=bid,
            disk_space=float(disk), disk_usage=-1, disk_util=-1, gpu_util=None, gpu_temp=None, cpu_util=None,
            mem_usage=None, mem_limit=None, vmem_usage=None, start_date=round(time.time(), 2), uptime_mins=None,
            volume_info=[], credit_balance=None, credit_discount=None, client_run_time=0.0,
            host_run_time=2592000.0, time_remaining="", time_remaining_isbid="", country_code=None,
            search=dict(breakdown), instance=dict(breakdown),
        )
        keys = [key["key"] for key in self.ssh_keys]
        instance = Instance(record, offer["id"], self.docker.container_name(instance_id), stuck, keys)
        instance.gpu_dph = dph_total - disk_hour
        if self.faults["short_ram"] > 0:  # the host gives the container far less RAM than the offer says
            self.faults["short_ram"] -= 1
            instance.memory_mb = SHORT_RAM_MB
        # The proxy endpoint exists from creation on and keeps its port for the contract's life. With a jupyter
        # runtype the proxy's ssh_port leads to jupyter and SSH is at ssh_port + 1, where the CLI's ssh-url looks.
        instance.proxy = TcpProxy(lambda: instance.sshd_port)
        jupyter = "jupyter" in request["runtype"]
        record["ssh_port"] = instance.proxy.port - 1 if jupyter else instance.proxy.port
        instance.direct = request["direct"]
        instance.pull_error = self._pull_error(request["image"])
        if bid and request["price"] < offer["min_bid"]:
            # Outbid from the start: the contract exists (and its disk bills) but the GPU goes to higher bids.
            instance.unscheduled = True
            record.update(actual_status="scheduling", cur_state="stopped", status_msg=(
                "Required resources are currently unavailable, state change queued: bid $%s/h is below the "
                "current minimum $%s/h" % (request["price"], offer["min_bid"])))
        return instance

    def _pull_error(self, image):
        """What `docker pull` says for an image the emulated registry cannot serve; None when it pulls."""
        if not image_reference_ok(image):
            return "Error response from daemon: invalid reference format: %s" % image
        if image in self.faults["missing_images"]:
            return "Error response from daemon: manifest for %s not found: manifest unknown: manifest unknown" % (
                image if ":" in image.rsplit("/", 1)[-1] else image + ":latest")
        return None

    # ---- lifecycle ----------------------------------------------------------------------------------------

    def _spawn(self, target, *args):
        threading.Thread(target=target, args=args, daemon=True).start()

    def _current(self, instance, generation):
        return not instance.destroyed and instance.generation == generation

    def _boot(self, instance, generation):
        """Creates (first time) and starts the container, then waits for sshd before the instance shows as running."""
        if instance.unscheduled or instance.pull_error:
            self._set_if_current(instance, generation, **self._never_starts(instance))
            return
        with instance.docker_lock:
            try:
                if not self._current(instance, generation):
                    return
                if not instance.container_created:  # a stop before the first boot leaves none to start
                    self._create_container(instance)
                    instance.container_created = True
                    self._set_if_current(instance, generation, actual_status="created",
                                         status_msg="Creating container")
                self.docker.start(instance.container)
                port = self.docker.ssh_port(instance.container)
                with self.lock:
                    if self._current(instance, generation):
                        instance.sshd_port = port  # the proxy forwards here from now on
            except DockerError as error:
                self._set_if_current(instance, generation, actual_status="created",
                                     status_msg="Error response from daemon: %s" % error)
                return
            finally:
                # A destroy that came in while docker worked found nothing to remove yet; remove it now, under
                # the lock, so two `docker rm` never race and a sweep after this sees the container gone.
                if instance.destroyed:
                    self.docker.remove(instance.container)
        loading_msg = PULL_PROGRESS if instance.stuck else "Starting container"
        self._set_if_current(instance, generation, actual_status="loading", status_msg=loading_msg)
        if not instance.stuck:
            self._wait_for_sshd(instance, generation, port)

    @staticmethod
    def _never_starts(instance):
        """The fields of an instance whose container can never start: outbid from the start, or a failed pull."""
        if instance.unscheduled:
            return {"actual_status": "scheduling", "cur_state": "stopped",
                    "status_msg": "Required resources are currently unavailable, state change queued"}
        return {"actual_status": "created", "status_msg": instance.pull_error}

    def _create_container(self, instance):
        env = dict(_plain_env(instance.record["extra_env"]))
        env.pop("CONTAINER_API_KEY", None)  # Vast's own value wins, as for the names below
        env.update(VAST_CONTAINERLABEL="C.%d" % instance.id, CONTAINER_ID=str(instance.id),
                   PUBLIC_KEY="\n".join(instance.attached_keys))
        self.docker.create(instance.container, env, memory_mb=instance.memory_mb,
                           secret_env={"CONTAINER_API_KEY": instance.api_key})
        if instance.record["onstart"]:
            self.docker.put_file(instance.container, "/root/onstart.sh", instance.record["onstart"])

    def _wait_for_sshd(self, instance, generation, port):
        with self.lock:
            ready_after = time.time() + float(self.faults["boot_delay"])
        deadline = time.time() + BOOT_TIMEOUT + float(self.faults["boot_delay"])
        while self._current(instance, generation) and time.time() < deadline:
            if time.time() >= ready_after and ssh_banner_ready(port):
                self._became_running(instance, generation, port)
                return
            time.sleep(0.2)
        self._set_if_current(instance, generation, status_msg="Container started but sshd never answered")

    def _became_running(self, instance, generation, port):
        try:
            # The entrypoint rewrites authorized_keys from PUBLIC_KEY on every start; re-add the attached keys.
            self.docker.append_authorized_keys(instance.container, instance.attached_keys)
        except DockerError:
            pass  # a container stopped meanwhile; its generation changed and nothing below applies
        with self.lock:
            if not self._current(instance, generation):
                return
            instance.running_since = time.time()
            # Only direct runtypes get container port 22 mapped on the host; proxy ones are reached via ssh_port.
            ports = {"22/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)}]} if instance.direct else {}
            instance.record.update(
                actual_status="running", status_msg="success, running %s/ssh" % instance.record["image_uuid"],
                ports=ports, gpu_util=0.0, gpu_temp=34.0,
                cpu_util=0.01, mem_usage=0.3, mem_limit=round(instance.record["cpu_ram"] / 1000.0, 1),
                vmem_usage=0.0, disk_usage=0.4, disk_util=round(0.4 / instance.record["disk_space"], 4),
            )

    def _set_if_current(self, instance, generation, **fields):
        with self.lock:
            if self._current(instance, generation):
                instance.record.update(fields)

    def _leave_running(self, instance, **fields):
        """Called under the lock on every transition; books the running time and bumps the generation."""
        if instance.running_since is not None:
            instance.running_seconds += time.time() - instance.running_since
            instance.running_since = None
        instance.generation += 1
        instance.sshd_port = None
        instance.record.update(ports=None, gpu_util=None, gpu_temp=None, cpu_util=None, **fields)
        return instance.generation

    def instance_with_key(self, key):
        """The id of the live instance whose own key this is, else None (a destroyed instance's key is revoked)."""
        with self.lock:
            for instance in self.instances.values():
                if not instance.destroyed and hmac.compare_digest(key.encode(), instance.api_key.encode()):
                    return instance.id
        return None

    def _live_ids(self):
        return {instance.id for instance in self.instances.values() if not instance.destroyed}

    def _get_live(self, instance_id):
        instance = self.instances.get(instance_id)
        if instance is None or instance.destroyed:
            raise no_such_instance()
        return instance

    def destroy_instance(self, instance_id):
        with self.lock:
            if self.faults["destroy_gone_form"] == "400" and instance_id not in self._live_ids():
                raise invalid_instance_id()
            instance = self._get_live(instance_id)
            self._destroy_locked(instance)
        with instance.docker_lock:
            self.docker.remove(instance.container)
        instance.proxy.close()
        return {"success": True, "msg": "Instance destroyed successfully"}

    def _destroy_locked(self, instance):
        self._leave_running(instance, actual_status="exited", intended_status="stopped", cur_state="unloaded",
                            next_state="unloaded", status_msg="Instance destroyed")
        instance.destroyed = True
        instance.destroyed_at = time.time()
        offer = self.offers.get(instance.offer_id)
        if offer is not None:
            offer["rented"] = False  # the GPU is free again, so the offer is listed again

    def update_instance(self, instance_id, body):
        """PUT /instances/{id}/: {"state": "stopped"|"running"} and/or {"label": text}."""
        if not isinstance(body, dict) or not ({"state", "label"} & set(body)):
            raise invalid_args("expected state or label")
        for key in body:
            if key not in ("state", "label"):
                raise invalid_args("unexpected field %s" % key)
        state = body.get("state")
        if state is not None and state not in ("running", "stopped"):
            raise invalid_args("state must be running or stopped")
        label = body.get("label")
        if "label" in body and label is not None and (not isinstance(label, str) or len(label) > 1024):
            raise invalid_args("label must be a string of at most 1024 characters")
        with self.lock:
            instance = self._get_live(instance_id)
            if "label" in body:
                instance.record["label"] = label
        if state == "stopped":
            self._stop(instance)
        elif state == "running":
            self._start(instance)
        return {"success": True}

    def _stop(self, instance):
        with self.lock:
            if instance.host_lost:  # nothing left to stop; the wish is recorded
                instance.record.update(intended_status="stopped", next_state="stopped")
                return
            self._leave_running(instance, actual_status="exited", intended_status="stopped", cur_state="stopped",
                                next_state="stopped", status_msg="Instance stopped by user")
        with instance.docker_lock:
            try:
                self.docker.stop(instance.container)
            except DockerError:
                pass  # not created yet or already gone: it is stopped either way

    def _start(self, instance):
        with self.lock:
            record = instance.record
            if instance.host_lost:  # the machine is gone: the start is queued forever
                record.update(intended_status="running", next_state="running")
                return
            if record["intended_status"] == "running" and record["actual_status"] in (None, "created", "loading",
                                                                                      "running"):
                return  # already running or on its way there
            generation = self._leave_running(instance, intended_status="running", cur_state="running",
                                             next_state="running", status_msg="Starting container")
        self._spawn(self._boot, instance, generation)

    def reboot_instance(self, instance_id):
        with self.lock:
            instance = self._get_live(instance_id)
            if instance.host_lost:
                return {"success": True}  # queued, like a start; the machine never comes back
        self._stop(instance)
        with self.lock:
            instance.record["actual_status"] = "rebooting"  # what Vast shows until the container is up again
        self._start(instance)
        return {"success": True}

    def preempt(self, instance_id, body):
        """kind "stopped": outbid; the container is killed abruptly, its disk kept, and it can be started again.
        kind "host_lost": the machine dropped off; container and disk are gone and the instance never returns."""
        kind = (body or {}).get("kind", "stopped")
        if kind not in ("stopped", "host_lost"):
            raise envelope(400, "invalid_args", "kind must be stopped or host_lost")
        with self.lock:
            instance = self._get_live(instance_id)
            if kind == "stopped":
                self._leave_running(instance, actual_status="exited", intended_status="running", cur_state="stopped",
                                    next_state="stopped",
                                    status_msg="Instance preempted: outbid by a higher priority renter")
            else:
                instance.host_lost = True
                self._leave_running(instance, actual_status="offline", cur_state="stopped",
                                    status_msg="Host machine is offline: no heartbeat since %s" %
                                    datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"))
        with instance.docker_lock:
            if kind == "stopped":
                self.docker.kill(instance.container)
            else:
                self.docker.remove(instance.container)
                instance.container_created = False
        return {"success": True, "instance": self._view(instance)}

    # ---- instance views -----------------------------------------------------------------------------------

    def _view(self, instance):
        row = dict(instance.record)
        now = time.time()
        row["duration"] = round(row["end_date"] - now, 1)  # the API's duration counts down to the listing end
        row["client_run_time"] = round(now - row["start_date"], 1)
        if instance.running_since is not None:
            row["uptime_mins"] = round((now - instance.running_since) / 60.0, 2)
        return row

    def show_instance(self, instance_id):
        with self.lock:
            instance = self.instances.get(instance_id)
            if instance is None or instance.destroyed:
                return {"instances": None}
            return {"instances": self._view(instance)}

    def list_instances(self, params):
        """GET /api/v1/instances/ with select_filters, order_by, select_cols, limit and after_token."""
        filters = _json_param(params, "select_filters", {})
        order_by = _json_param(params, "order_by", [{"col": "id", "dir": "asc"}])
        select_cols = _json_param(params, "select_cols", ["*"])
        limit = _page_size(params.get("limit"))
        offset = _decode_token(params.get("after_token"))
        if not isinstance(filters, dict):
            raise _query_error("select_filters must be an object")
        for column in filters:
            if column not in FILTERABLE_COLUMNS:
                raise _query_error("%s is not a valid search key" % column)
        with self.lock:
            rows = [self._view(instance) for instance in self.instances.values() if not instance.destroyed]
        rows = [row for row in rows if all(_row_matches(row, column, spec) for column, spec in filters.items())]
        _order_rows(rows, order_by)
        page = rows[offset:offset + limit]
        label_counts = {}
        for row in rows:
            label_counts[row["label"] or ""] = label_counts.get(row["label"] or "", 0) + 1
        more = offset + limit < len(rows)
        return {"success": True, "instances_found": len(page), "total_instances": len(rows),
                "label_counts": label_counts, "next_token": _encode_token(offset + limit) if more else None,
                "instances": [_select(row, select_cols) for row in page]}

    # ---- SSH keys -----------------------------------------------------------------------------------------

    def list_ssh_keys(self):
        with self.lock:
            if not self.ssh_keys:
                raise envelope(404, "not_found", "No SSH keys found for the user.")
            return [dict(key) for key in self.ssh_keys]

    def add_ssh_key(self, body):
        text = _public_key(body)
        with self.lock:
            key = {"id": self.next_key_id, "user_id": self.user_id, "key": text,
                   "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "deleted_at": None}
            self.next_key_id += 1
            self.ssh_keys.append(key)
        return {"success": True, "key": {"id": key["id"], "user_id": key["user_id"], "public_key": text,
                                         "created_at": key["created_at"], "deleted_at": None}}

    def update_ssh_key(self, key_id, body):
        text = _public_key(body)
        with self.lock:
            self._find_key(key_id)["key"] = text
        return {"success": True}

    def delete_ssh_key(self, key_id):
        with self.lock:
            self.ssh_keys.remove(self._find_key(key_id))
        return {"success": True}

    def _find_key(self, key_id):
        for key in self.ssh_keys:
            if key["id"] == key_id:
                return key
        raise envelope(400, "no_ssh_key", "No such ssh key")

    def attach_ssh_key(self, instance_id, body):
        text = _public_key(body)
        with self.lock:
            instance = self._get_live(instance_id)
            if text not in instance.attached_keys:
                instance.attached_keys.append(text)
            running = instance.record["actual_status"] == "running"
        if running:
            with instance.docker_lock:
                self.docker.append_authorized_keys(instance.container, [text])
        return {"success": True, "msg": "SSH key attached successfully"}

    # ---- user, ledger, faults, control --------------------------------------------------------------------

    def ledger(self):
        """Storage bills from creation to destroy whatever the state; the GPU part only while running."""
        with self.lock:
            now = time.time()
            rows = {}
            for instance in self.instances.values():
                running = instance.running_seconds
                if instance.running_since is not None:
                    running += now - instance.running_since
                rented = (instance.destroyed_at or now) - instance.created_at
                storage_dph = instance.record["storage_total_cost"]
                gpu_cost = instance.gpu_dph * running / 3600.0
                storage_cost = storage_dph * rented / 3600.0
                rows[str(instance.id)] = {
                    "dph_total": instance.record["dph_total"], "gpu_dph": round(instance.gpu_dph, 7),
                    "storage_dph": storage_dph, "running_seconds": round(running, 3),
                    "rented_seconds": round(rented, 3), "gpu_cost": round(gpu_cost, 7),
                    "storage_cost": round(storage_cost, 7), "cost": round(gpu_cost + storage_cost, 7),
                    "destroyed": instance.destroyed}
            return {"currency": "USD", "instances": rows,
                    "total": round(sum(row["cost"] for row in rows.values()), 7)}

    def current_user(self):
        spent = self.ledger()["total"]
        with self.lock:
            first_key = self.ssh_keys[0]["key"] if self.ssh_keys else None
        return {"id": self.user_id, "key_id": 990011, "username": "voltx-emulator", "fullname": "Voltx Emulator",
                "email": "emulator@voltx.invalid", "email_verified": True, "credit": round(self.deposited - spent, 7),
                "balance": round(-spent, 7), "balance_threshold": 0.0, "balance_threshold_enabled": False,
                "billed_expected": 0.0, "billed_verified": 0.0, "billing_creditonly": True, "can_pay": True,
                "has_billing": True, "has_payout": False, "got_signup_credit": True, "last4": None,
                "paid_expected": 0.0, "paid_verified": 0.0, "password_resettable": True, "paypal_email": None,
                "ssh_key": first_key, "user": "voltx-emulator", "sid": None, "host_agreement_accepted": False}

    def set_faults(self, body):
        if not isinstance(body, dict):
            raise envelope(400, "invalid_args", "faults must be a JSON object")
        with self.lock:
            for name in ("rate_limit", "server_error", "stuck_loading", "short_ram"):
                if name in body:
                    self.faults[name] = int(body[name])
            for name in ("boot_delay", "create_delay"):
                if name in body:
                    self.faults[name] = float(body[name])
            if "fault_on" in body:
                self.faults["fault_on"] = str(body["fault_on"])
            if "destroy_gone_form" in body:
                if str(body["destroy_gone_form"]) not in ("404", "400"):
                    raise envelope(400, "invalid_args", "destroy_gone_form must be 404 or 400")
                self.faults["destroy_gone_form"] = str(body["destroy_gone_form"])
            if "missing_images" in body:
                if not isinstance(body["missing_images"], list):
                    raise envelope(400, "invalid_args", "missing_images must be a list of image names")
                self.faults["missing_images"] = [str(image) for image in body["missing_images"]]
            if "credit" in body:  # the account's credit from now on: deposits are the spent total plus this
                self.deposited = float(body["credit"]) + self.ledger()["total"]
            if "overprice" in body:
                spec = body["overprice"]
                self.faults["overprice"] = {"count": int(spec.get("count", 1)), "factor": float(spec["factor"])}
            if "offer_taken" in body:
                self._set_offer_taken(body["offer_taken"])
            return self.faults_view()

    def _set_offer_taken(self, spec):
        """[ids], N, or {"offers": [ids], "count": N, "form": "404"|"410"|"400"|"200"}: the form stays set."""
        if isinstance(spec, dict):
            form = str(spec.get("form", self.faults["offer_taken_form"]))
            if form not in OFFER_GONE_FORMS:
                raise envelope(400, "invalid_args", "offer_taken form must be one of %s" % ", ".join(OFFER_GONE_FORMS))
            self.faults["offer_taken_form"] = form
            if "offers" in spec:
                self._set_offer_taken(list(spec["offers"]))
            if "count" in spec:
                self._set_offer_taken(int(spec["count"]))
        elif isinstance(spec, list):
            self.faults["offer_taken"] = sorted(set(self.faults["offer_taken"]) | {int(i) for i in spec})
        else:
            self.faults["offer_taken_count"] = int(spec)

    def faults_view(self):
        with self.lock:
            return {name: (dict(value) if isinstance(value, dict) else value) for name, value in self.faults.items()}

    def consume_fault(self, name, request):
        """True when a counting fault (rate_limit, server_error) fires for this request ("PUT /api/v0/asks/1/"):
        every request, or only those that start with fault_on."""
        with self.lock:
            if self.faults[name] > 0 and request.startswith(self.faults["fault_on"]):
                self.faults[name] -= 1
                return True
            return False

    def log_request(self, method, path, status):
        with self.lock:
            self.requests.append({"time": round(time.time(), 3), "method": method, "path": path, "status": status})

    def state(self):
        with self.lock:
            instances = [dict(self._view(instance), destroyed=instance.destroyed, container=instance.container)
                         for instance in self.instances.values()]
            requests = list(self.requests)
        return {"instances": instances, "ledger": self.ledger(), "requests": requests, "faults": self.faults_view()}

    def reset(self):
        self.shutdown()
        with self.lock:
            self._clear()
        return {"success": True}

    def shutdown(self):
        """Destroys every instance and sweeps any container left with this emulator's label."""
        with self.lock:
            live = [instance for instance in self.instances.values() if not instance.destroyed]
            for instance in live:
                self._destroy_locked(instance)
        for instance in live:
            with instance.docker_lock:  # waits for a boot thread's docker create/start still in flight
                self.docker.remove(instance.container)
            instance.proxy.close()
        self.docker.sweep()


# ---- request validation and list helpers ----------------------------------------------------------------------

STR, NUM, BOOL, OBJ, LIST, INT = "string", "number", "boolean", "object", "list", "integer"
# Keys a create body may carry and their JSON types (None is accepted where the CLI sends null): what the
# official client's build_create_instance_payload sends, plus the extras Vast documents (reference section 3.2).
CREATE_KEYS = {
    "client_id": STR, "image": STR, "env": OBJ, "price": NUM, "disk": NUM, "label": STR, "extra": STR,
    "onstart": STR, "image_login": STR, "python_utf8": BOOL, "lang_utf8": BOOL, "use_jupyter_lab": BOOL,
    "jupyter_dir": STR, "force": BOOL, "cancel_unavail": BOOL, "template_hash_id": STR, "user": STR,
    "runtype": STR, "args": LIST, "volume_info": OBJ,
    "target_state": STR, "args_str": STR, "template_id": INT, "vm": BOOL,
}
TYPE_CHECKS = {
    STR: lambda v: isinstance(v, str),
    NUM: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    INT: lambda v: isinstance(v, int) and not isinstance(v, bool),
    BOOL: lambda v: isinstance(v, bool),
    OBJ: lambda v: isinstance(v, dict),
    LIST: lambda v: isinstance(v, list),
}
RUNTYPE_TOKENS = {"ssh", "jupyter", "args", "ssh_proxy", "ssh_direc", "ssh_direct", "jupyter_proxy",
                  "jupyter_direc", "jupyter_direct"}
DIRECT_TOKENS = {"ssh_direc", "ssh_direct", "jupyter_direc", "jupyter_direct"}


def _validate_create(offer_id, body):
    if not isinstance(body, dict):
        raise invalid_args("body must be a JSON object", ask_id=offer_id)
    for key, value in body.items():
        kind = CREATE_KEYS.get(key)
        if kind is None:
            raise invalid_args("unexpected field %s" % key, ask_id=offer_id)
        if value is not None and not TYPE_CHECKS[kind](value):
            raise invalid_args("%s must be of type %s, got %s" % (key, kind, type(value).__name__),
                               ask_id=offer_id)
    template_hash = body.get("template_hash_id")
    template = {}
    if template_hash is not None:
        template = TEMPLATES.get(template_hash)
        if template is None:
            raise invalid_args("template_hash_id %s does not name a template" % template_hash, ask_id=offer_id)
    image = body.get("image") or template.get("image")  # the request wins over the template
    if not isinstance(image, str) or not image.strip():
        raise invalid_args("image is required (or a template_hash_id whose template names one)", ask_id=offer_id)
    disk = 10 if body.get("disk") is None else body["disk"]
    if disk < 8:
        raise invalid_args("disk must be at least 8 GB", ask_id=offer_id)
    env = dict(template.get("env") or {}, **(body.get("env") or {}))
    for name, value in env.items():
        if not isinstance(value, str):
            raise invalid_args("env value of %s must be a string" % name, ask_id=offer_id)
    price = body.get("price")
    if price is not None and not 0.001 <= price <= 128:
        raise envelope(400, "invalid_price", "error 400/3467: Invalid args: price must be between 0.001 and 128",
                       ask_id=offer_id)
    label = body.get("label")
    if label is not None and len(label) > 1024:
        raise invalid_args("label must be at most 1024 characters", ask_id=offer_id)
    onstart = body.get("onstart") or template.get("onstart")
    if onstart is not None and len(onstart) > 4048:
        raise invalid_args("onstart must be at most 4048 characters", ask_id=offer_id)
    runtype = body.get("runtype") or template.get("runtype") or "ssh"  # the SDK leaves it out: default ssh
    unknown = set(runtype.split()) - RUNTYPE_TOKENS
    if unknown or not runtype.split():
        raise invalid_args("invalid runtype %r" % runtype, ask_id=offer_id)
    # Omitted, cancel_unavail is false for a bid and true for on-demand (reference section 3.2).
    cancel_unavail = body.get("cancel_unavail")
    if cancel_unavail is None:
        cancel_unavail = price is None
    return {"image": image.strip(), "disk": disk, "env": env, "price": price, "label": label, "onstart": onstart,
            "runtype": runtype, "direct": bool(set(runtype.split()) & DIRECT_TOKENS), "cancel_unavail": cancel_unavail,
            "template_hash_id": template_hash, "template": template}


def _plain_env(pairs):
    """Only NAME=value entries become container variables; docker flags such as '-p 8080:8080' are just kept."""
    for key, value in pairs:
        if key and key[0] not in "0123456789" and set(key) <= ENV_NAME_CHARS:
            yield key, value


def _public_key(body):
    text = body.get("ssh_key") if isinstance(body, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise envelope(400, "no_ssh_key", "No ssh key provided")
    text = text.strip()
    fields = text.split()
    if len(fields) < 2 or "PRIVATE KEY" in text or not fields[0].startswith(("ssh-", "ecdsa-", "sk-")):
        raise envelope(400, "no_ssh_key", "Invalid ssh key: expected an OpenSSH public key line")
    return text


def _query_error(detail):
    return envelope(400, "invalid_request", "Error in query parameters: " + detail)


def _json_param(params, name, default):
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return json.loads(raw)
    except ValueError:
        raise _query_error("%s is not valid JSON" % name)


def _page_size(raw):
    if raw is None or raw == "":
        return PAGE_SIZE
    try:
        limit = int(raw)
    except ValueError:
        raise _query_error("limit must be an integer")
    return 5 if limit <= 0 else min(limit, PAGE_SIZE)


def _encode_token(offset):
    return base64.urlsafe_b64encode(json.dumps({"v": 1, "offset": offset}).encode()).decode()


def _decode_token(token):
    if not token:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()).decode())
        offset = data["offset"]
        if data.get("v") != 1 or not isinstance(offset, int) or offset < 0:
            raise ValueError(token)
        return offset
    except (ValueError, KeyError, TypeError, UnicodeError):
        raise envelope(400, "invalid_token", "Invalid after_token")


def _row_matches(row, column, spec):
    if not isinstance(spec, dict):
        spec = {"eq": spec}
    actual = row.get(column)
    for op, wanted in spec.items():
        if op not in ("eq", "neq", "gt", "gte", "lt", "lte", "in", "notin"):
            raise _query_error("%s is not a valid operator" % op)
        if not offer_search.compare(actual, op, wanted, column):
            return False
    return True


def _order_rows(rows, order_by):
    if not isinstance(order_by, list):
        raise _query_error("order_by must be a list")
    keys = []
    for entry in order_by:
        if not isinstance(entry, dict) or "col" not in entry:
            raise _query_error("order_by entries need a col")
        if entry["col"] not in FILTERABLE_COLUMNS:
            raise _query_error("%s is not a valid order column" % entry["col"])
        keys.append([entry["col"], "desc" if str(entry.get("dir", "asc")).lower() == "desc" else "asc"])
    keys.append(["id", "asc"])  # the server always breaks ties on id
    offer_search.sort_rows(rows, keys)


def _select(row, select_cols):
    if not isinstance(select_cols, list) or "*" in select_cols:
        return row
    return dict({column: row.get(column) for column in select_cols}, id=row["id"])

# -*- coding: utf-8 -*-
# Copyright: (c) 2026, voltx engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""VastModule: the shared argument spec, client construction, input validation and one way to
turn a VastError into ``fail_json`` without ever carrying the API key."""

from __future__ import annotations

import time
import traceback

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ._client import (
    HAS_REQUESTS,
    REQUESTS_IMPORT_ERROR,
    RetryPolicy,
    VastClient,
    VastError,
    scrub,
)
from ._blocklist import BLOCKLIST_ENV, blocked_machines, blocklist_path, load_blocklist
from ._offers import build_offer_query, exclude_machines


def vast_argument_spec():
    """Connection options (documented in the ``voltx.vastai.vastai`` doc fragment). The API key is not one: options
    are written into the module's payload on disk, so the client reads the key itself (VAST_API_KEY, the key files)."""
    return dict(
        api_url=dict(type="str", fallback=(env_fallback, ["VAST_API_URL"])),
        request_timeout=dict(type="float", default=30.0),
        retries=dict(type="int", default=4),
    )


def offer_filter_argument_spec():
    """Offer filter options (documented in the ``voltx.vastai.vastai.offer_filters`` fragment)."""
    return dict(
        gpu_name=dict(type="str"),
        num_gpus=dict(type="int"),
        min_cpu_cores=dict(type="float"),
        min_host_cpu_cores=dict(type="int"),
        min_ram_gb=dict(type="float"),
        min_disk_gb=dict(type="float"),
        min_cuda=dict(type="float"),
        max_dph=dict(type="float"),
        min_reliability=dict(type="float"),
        min_inet_up_mbps=dict(type="float"),
        min_duration_days=dict(type="float"),
        verified=dict(type="bool", default=True),
        rental_type=dict(type="str", default="on-demand", choices=["on-demand", "interruptible"]),
        query=dict(type="dict"),
        order=dict(type="list", elements="str"),
        limit=dict(type="int"),
        blocklist_file=dict(type="path", fallback=(env_fallback, [BLOCKLIST_ENV])),
    )


# The options that shape the /bundles/ query (blocklist_file is read into it, not passed as an option).
OFFER_FILTER_OPTIONS = tuple(name for name in offer_filter_argument_spec() if name != "blocklist_file")


class VastModule:
    """Base for the voltx.vastai modules.

    A subclass implements ``run()``; it may add checks in ``validate()``
    (called before any request) by calling ``self.fail_option(option, why)``.
    """

    def __init__(self, module, sleep=time.sleep, clock=time.time, client=None):
        self.module = module
        self.sleep = sleep
        self.clock = clock
        self.result = {"changed": False}
        self._client = client
        self._secrets = []

    # -- argument spec -------------------------------------------------------------------------

    @staticmethod
    def base_module_argument_spec():
        return vast_argument_spec()

    @staticmethod
    def offer_filter_argument_spec():
        return offer_filter_argument_spec()

    # -- client --------------------------------------------------------------------------------

    @property
    def client(self):
        if self._client is None:
            if not HAS_REQUESTS:
                self.module.fail_json(msg=missing_required_lib("requests"), exception=_format_exc(REQUESTS_IMPORT_ERROR))
            params = self.module.params
            try:
                self._client = VastClient(
                    api_url=params.get("api_url"),
                    timeout=params.get("request_timeout"),
                    retry_policy=RetryPolicy(attempts=params.get("retries", 4) + 1),
                    sleep=self.sleep,
                )
            except VastError as exc:
                self.fail_on_error(exc)
            self._secrets = self._client.secrets()
            self.module.no_log_values.update(self._secrets)
        return self._client

    # -- errors --------------------------------------------------------------------------------

    def _scrub(self, text):
        for secret in self._secrets:
            text = scrub(text, secret)
        return text

    def fail(self, msg, **kwargs):
        kwargs.pop("changed", None)
        result = dict(self.result)
        result.update(kwargs)
        self.module.fail_json(msg=self._scrub(msg), **result)

    def fail_on_error(self, exc, prefix=None, **kwargs):
        message = str(exc)
        if prefix:
            message = "%s: %s" % (prefix, message)
        extra = {}
        if isinstance(exc, VastError):
            extra = dict(status=exc.status, error_code=exc.error)
        extra.update(kwargs)
        self.fail(message, **extra)

    def fail_option(self, option, why):
        self.fail("%s: %s" % (option, why))

    # -- validation ----------------------------------------------------------------------------

    def validate(self):
        """Checks before any request; subclasses extend and call super()."""
        params = self.module.params
        if params.get("request_timeout") is not None and params["request_timeout"] <= 0:
            self.fail_option("request_timeout", "must be greater than 0, got %s" % params["request_timeout"])
        if params.get("retries") is not None and params["retries"] < 0:
            self.fail_option("retries", "must be 0 or more, got %s" % params["retries"])
        if params.get("api_url") is not None and not str(params["api_url"]).startswith(("http://", "https://")):
            self.fail_option("api_url", "must start with http:// or https://, got %r" % params["api_url"])

    def build_offer_query(self, allocated_storage=None, min_disk_gb=None, use_blocklist=True):
        """The /bundles/ body from the filter options; a bad option fails here, before any request."""
        params = self.module.params
        args = dict((name, params.get(name)) for name in OFFER_FILTER_OPTIONS)
        if min_disk_gb is not None:
            args["min_disk_gb"] = min_disk_gb
        try:
            query = build_offer_query(allocated_storage=allocated_storage, **args)
            return exclude_machines(query, self.blocked_machines()) if use_blocklist else query
        except ValueError as exc:
            self.fail(str(exc))
        return None  # not reached

    def blocklist_file(self):
        return blocklist_path(self.module.params.get("blocklist_file"))

    def blocked_machines(self):
        """Machine ids on the persistent blocklist (ValueError naming the file when it is malformed)."""
        return blocked_machines(load_blocklist(self.blocklist_file()))

    # -- entry point ---------------------------------------------------------------------------

    def execute(self):
        self.validate()
        try:
            self.run()
        except VastError as exc:
            self.fail_on_error(exc)
        self.module.exit_json(**self.result)

    def run(self):  # pragma: no cover - abstract
        raise NotImplementedError


def _format_exc(exc):
    if exc is None:
        return None
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))

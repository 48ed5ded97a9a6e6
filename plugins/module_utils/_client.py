# -*- coding: utf-8 -*-
# Copyright: (c) 2026, voltx engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Vast.ai REST client: HTTP, authentication, retries and typed errors.

This file knows nothing about Ansible so that modules, the inventory plugin and unit tests
can all use it. The API key is sent only as ``Authorization: Bearer``; it never appears in
an exception message, a URL or a value this client returns.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import random
import re
import time

try:
    import requests
    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - exercised only without requests
    requests = None
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = exc

DEFAULT_API_URL = "https://console.vast.ai"
DEFAULT_TIMEOUT = 30.0
# Seconds a create may take: the official vastai client waits this long for every request.
CREATE_TIMEOUT = 120.0
USER_AGENT = "voltx.vastai-ansible/1.0.0"
RETRY_STATUSES = frozenset([429, 502, 503, 504])
# Replies from a service that is down (not a gateway that timed out waiting for it): a create answered so most
# likely never ran, yet is looked up by label before it is sent again.
UNAVAILABLE_STATUSES = frozenset([502, 503])
MAX_RETRY_AFTER = 60.0
MAX_PAGES = 1000
SNIPPET_CHARS = 200
REDACTED = "<redacted>"

# Keys that may hold a secret in a reply: removed from everything the client returns.
SECRET_FIELDS = ("api_key", "instance_api_key")


class VastError(Exception):
    """Any failure talking to Vast.ai. ``str()`` is the human message."""

    def __init__(self, message, status=None, error=None, body=None, maybe_created=False):
        super(VastError, self).__init__(message)
        self.message = message
        self.status = status
        self.error = error
        self.body = body
        # Only meaningful for create_instance: the request may have reached the API.
        self.maybe_created = maybe_created
        # create_instance: the service answered 502/503 to every try (an outage, not a problem of the offer).
        self.unavailable = False

    def __str__(self):
        return self.message

    def redact(self, secret):
        """Scrub ``secret`` from the message and body (safety net)."""
        if not secret:
            return self
        self.message = scrub(self.message, secret)
        self.args = (self.message,)
        if isinstance(self.body, str):
            self.body = scrub(self.body, secret)
        elif self.body is not None:
            try:
                self.body = json.loads(scrub(json.dumps(self.body), secret))
            except (TypeError, ValueError):
                self.body = None
        return self


class VastConfigError(VastError):
    """No API key found, bad base URL, bad argument."""


class VastAuthError(VastError):
    """401 / 403."""


class VastNotFoundError(VastError):
    """404 on a named object."""


class VastOfferUnavailableError(VastError):
    """400/404/410 carrying no_such_ask / 3603: the offer was taken or withdrawn."""


class VastRateLimitError(VastError):
    """429 after the retries ran out, or the daily search quota."""


class VastTransportError(VastError):
    """Connection error / timeout after the retries ran out."""


def scrub(text, secret):
    """Replace every occurrence of ``secret`` in ``text``."""
    if not secret or text is None:
        return text
    text = str(text)
    if secret in text:
        text = text.replace(secret, REDACTED)
    return text


# --------------------------------------------------------------------------------------------
# API key resolution
# --------------------------------------------------------------------------------------------

def _read_key_file(path):
    try:
        with open(path, "r") as handle:
            return handle.read().strip()
    except (IOError, OSError):
        return None


def api_key_locations(environ=None, home=None):
    """The key files looked at, in order: the CLI's 2FA session key (``vastai tfa login`` writes it and the CLI
    prefers it), its API key file, then the legacy file."""
    environ = os.environ if environ is None else environ
    if home is None:
        home = environ.get("HOME") or os.path.expanduser("~")
    xdg = environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    return [os.path.join(xdg, "vastai", "vast_tfa_key"), os.path.join(xdg, "vastai", "vast_api_key"),
            os.path.join(home, ".vast_api_key")]


def resolve_api_key(environ=None, home=None, skip=()):
    """Return ``(key, source)``; the source is the variable or the file's path, never the key.

    Never an option: a module's options are written into its payload on disk. Order: ``VAST_API_KEY`` ->
    ``$XDG_CONFIG_HOME/vastai/vast_tfa_key`` -> ``$XDG_CONFIG_HOME/vastai/vast_api_key`` (``XDG_CONFIG_HOME``
    defaults to ``~/.config``) -> ``~/.vast_api_key``. Values are stripped; empty values do not count. Both key
    files are sent the same way, as ``Authorization: Bearer``. Files in ``skip`` are passed over.
    """
    environ = os.environ if environ is None else environ
    env_key = (environ.get("VAST_API_KEY") or "").strip()
    if env_key:
        return env_key, "VAST_API_KEY environment variable"
    locations = api_key_locations(environ, home)
    for path in locations:
        key = None if path in skip else _read_key_file(path)
        if key:
            return key, path
    raise VastConfigError(
        "No Vast.ai API key found: set VAST_API_KEY or put the key in %s (`vastai set api-key KEY` writes it there; "
        "%s are read too)." % (locations[1], " and ".join(locations[:1] + locations[2:]))
    )


def tfa_session_expired(status, body):
    """The replies the CLI takes for an expired 2FA session key (it then retries with the API key file)."""
    msg = body.get("msg") if isinstance(body, dict) else None
    return (status == 401 and msg == "Invalid user key") or (
        status == 404 and msg == "Session expired. Please log in again.")


def resolve_api_url(explicit=None, environ=None):
    environ = os.environ if environ is None else environ
    url = (explicit or environ.get("VAST_API_URL") or DEFAULT_API_URL).strip()
    if not re.match(r"^https?://[^/\s?#]+", url):
        raise VastConfigError("Invalid Vast.ai API URL %r: it must start with http:// or https:// and name a host." % url)
    if "?" in url or "#" in url:
        raise VastConfigError("Invalid Vast.ai API URL %r: it must not carry a query string or fragment." % url)
    return url.rstrip("/")


def account_id(api_url, api_key):
    """Which endpoint and key a client uses, comparable without showing the key: the URL and a digest of the key."""
    digest = hashlib.sha256(("voltx.vastai account " + api_key).encode("utf-8")).hexdigest()[:16]
    return {"api_url": resolve_api_url(api_url), "key_sha256": digest}


# --------------------------------------------------------------------------------------------
# Retry policy
# --------------------------------------------------------------------------------------------

class RetryPolicy:
    """Bounded attempts with exponential backoff and jitter.

    ``attempts`` is the total number of tries (1 = no retry). The n-th wait (n from 0) is
    ``min(max_delay, base_delay * factor ** n)`` multiplied by a random factor in
    ``[1 - jitter, 1 + jitter]``.
    """

    def __init__(self, attempts=5, base_delay=1.0, factor=2.0, max_delay=30.0, jitter=0.25,
                 max_retry_after=MAX_RETRY_AFTER, rng=None):
        if attempts < 1:
            raise VastConfigError("RetryPolicy attempts must be >= 1, got %r" % (attempts,))
        if jitter < 0 or jitter > 1:
            raise VastConfigError("RetryPolicy jitter must be within [0, 1], got %r" % (jitter,))
        self.attempts = int(attempts)
        self.base_delay = float(base_delay)
        self.factor = float(factor)
        self.max_delay = float(max_delay)
        self.jitter = float(jitter)
        self.max_retry_after = float(max_retry_after)
        self.rng = rng or random.random

    def backoff(self, retry_number):
        """Delay before retry number ``retry_number`` (0-based), jitter included."""
        delay = min(self.max_delay, self.base_delay * (self.factor ** retry_number))
        if self.jitter:
            delay *= 1.0 + self.jitter * (2.0 * self.rng() - 1.0)
        return max(0.0, delay)

    def delays(self):
        """Iterator of the ``attempts - 1`` sleeps between attempts."""
        for number in range(self.attempts - 1):
            yield self.backoff(number)


def parse_retry_after(value, now=None):
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date), or None."""
    if value is None:
        return None
    value = str(value).strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        stamp = email.utils.mktime_tz(parsed)
    except (TypeError, ValueError, OverflowError):
        return None
    now = time.time() if now is None else now
    return max(0.0, stamp - now)


# --------------------------------------------------------------------------------------------
# Error mapping (pure)
# --------------------------------------------------------------------------------------------

def _decode_body(text):
    if text is None:
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


def _snippet(text):
    text = re.sub(r"<[^>]*>", " ", text or "")  # HTML error pages
    text = " ".join(text.split())
    if len(text) > SNIPPET_CHARS:
        text = text[:SNIPPET_CHARS] + "..."
    return text


def extract_message(body, text=None):
    """The API's own words: ``msg``, ``message``, ``detail``, ``error`` or a plain-text snippet."""
    if isinstance(body, dict):
        for key in ("msg", "message", "detail", "error"):
            value = body.get(key)
            if value not in (None, "", True, False):
                if not isinstance(value, str):
                    value = json.dumps(value)
                return _snippet(value)
    elif isinstance(body, str):
        return _snippet(body)
    if text:
        return _snippet(text)
    return ""


def extract_error_code(body):
    if isinstance(body, dict):
        code = body.get("error")
        if isinstance(code, str) and code:
            return code
    return None


def is_offer_unavailable(status, body, text=None):
    """status in 400/404/410 (or a 2xx whose body says ``success: false``) and ``no_such_ask`` or code
    ``3603`` in error/msg."""
    refused_ok = isinstance(status, int) and 200 <= status < 300 and isinstance(body, dict) \
        and body.get("success") is False
    if status not in (400, 404, 410) and not refused_ok:
        return False
    parts = []
    if isinstance(body, dict):
        for key in ("error", "msg", "message", "detail"):
            value = body.get(key)
            if isinstance(value, str):
                parts.append(value)
    elif text:
        parts.append(text)
    joined = " ".join(parts).lower()
    return "no_such_ask" in joined or re.search(r"(^|\D)3603(\D|$)", joined) is not None


def is_not_found_code(error):
    return error in ("not_found", "no_such_instance", "no_such_ssh_key", "no_ssh_key", "invalid_id")


def error_from_response(status, text, method, path, headers=None):
    """Build the typed exception for an HTTP error reply (or a 2xx with ``success: false``)."""
    body = _decode_body(text)
    msg = extract_message(body, text)
    code = extract_error_code(body)
    detail = "HTTP %s" % status if status is not None else "HTTP ?"
    if code:
        detail += "/%s" % code
    shown = msg or "(no detail message supplied)"
    where = "%s %s" % (method, path)
    if status == 401:
        return VastAuthError(
            "Vast.ai rejected the API key (HTTP 401: %s). Check VAST_API_KEY or the key file." % (
                msg or "Invalid user key"),
            status=status, error=code, body=body)
    if status == 403:
        return VastAuthError(
            "Vast.ai refused %s (HTTP 403: %s). The API key may lack the permission for this call." % (where, shown),
            status=status, error=code, body=body)
    if is_offer_unavailable(status, body, text):
        return VastOfferUnavailableError(
            "Vast.ai offer is no longer available (%s on %s): %s" % (detail, where, shown),
            status=status, error=code or "no_such_ask", body=body)
    if status == 429:
        if code == "search_quota_exceeded":
            reset = (headers or {}).get("X-RateLimit-Reset")
            extra = " The quota resets at epoch %s." % reset if reset else " The quota resets at midnight UTC."
            return VastRateLimitError(
                "Vast.ai daily search quota exceeded (%s on %s): %s.%s" % (detail, where, shown, extra),
                status=status, error=code, body=body)
        return VastRateLimitError(
            "Vast.ai rate limit hit and the retries ran out (%s on %s): %s" % (detail, where, shown),
            status=status, error=code, body=body)
    if status == 404 or is_not_found_code(code):
        return VastNotFoundError(
            "Vast.ai found nothing at %s (%s): %s" % (where, detail, shown), status=status, error=code, body=body)
    return VastError("Vast.ai API error on %s (%s): %s" % (where, detail, shown), status=status, error=code, body=body)


def _clean(value):
    """Strip whitespace from strings (recursively) and drop secret fields."""
    if isinstance(value, dict):
        return dict((k, _clean(v)) for k, v in value.items() if k not in SECRET_FIELDS)
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, str):
        return value.strip()
    return value


def normalize_instance(raw):
    """An instance record as the API sent it, with strings stripped and secrets dropped."""
    if not isinstance(raw, dict):
        return raw
    inst = _clean(raw)
    env = inst.get("extra_env")
    if isinstance(env, list):
        pairs = {}
        for item in env:
            if isinstance(item, (list, tuple)) and len(item) == 2:
                pairs[str(item[0])] = item[1]
        inst["extra_env"] = pairs
    return inst


def normalize_ssh_key(raw):
    if not isinstance(raw, dict):
        return raw
    key = _clean(raw)
    if "key" not in key and "public_key" in key:
        key["key"] = key["public_key"]
    if "public_key" not in key and "key" in key:
        key["public_key"] = key["key"]
    return key


# --------------------------------------------------------------------------------------------
# Client
# --------------------------------------------------------------------------------------------

class VastClient:
    """Thin typed wrapper around the Vast.ai REST API."""

    def __init__(self, api_url=None, timeout=DEFAULT_TIMEOUT, retry_policy=None, session=None,
                 sleep=time.sleep, environ=None, home=None, clock=time.time):
        if session is None and not HAS_REQUESTS:
            raise VastConfigError("The Python library 'requests' is required to talk to Vast.ai.")
        self.api_key, self.api_key_source = resolve_api_key(environ=environ, home=home)
        # Like the CLI: a 2FA session key that has expired gives way, once, to the next key file.
        self._first_key = self.api_key
        self.fallback_key = None
        if self.api_key_source == api_key_locations(environ, home)[0]:
            try:
                self.fallback_key = resolve_api_key(environ=environ, home=home, skip=(self.api_key_source,))
            except VastConfigError:
                pass
        self.api_url = resolve_api_url(api_url, environ=environ)
        try:
            self.timeout = float(timeout)
        except (TypeError, ValueError):
            raise VastConfigError("request timeout must be a number, got %r" % (timeout,))
        if self.timeout <= 0:
            raise VastConfigError("request timeout must be > 0, got %r" % (timeout,))
        self.retry_policy = retry_policy or RetryPolicy()
        self.session = session if session is not None else requests.Session()
        self.sleep = sleep
        self.clock = clock
        self.calls = 0  # HTTP requests sent (for tests and diagnostics)

    # -- plumbing ------------------------------------------------------------------------------

    def secrets(self):
        """Every key this client sends or may send: the one in use and a 2FA fallback."""
        keys = [self._first_key, self.api_key, self.fallback_key and self.fallback_key[0]]
        return [key for number, key in enumerate(keys) if key and key not in keys[:number]]

    def account(self):
        """account_id() of this client's endpoint and first key."""
        return account_id(self.api_url, self._first_key)

    def _redact(self, exc):
        if isinstance(exc, VastError):
            for secret in self.secrets():
                exc.redact(secret)
        return exc

    def _url(self, path):
        if not path.startswith("/"):
            path = "/" + path
        if not re.match(r"^/api/v\d+/", path):
            path = "/api/v0" + path
        return path, self.api_url + path

    def _headers(self):
        return {
            "Authorization": "Bearer %s" % self.api_key,
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }

    @staticmethod
    def _encode_params(params):
        if not params:
            return None
        encoded = {}
        for name, value in params.items():
            if value is None:
                continue
            encoded[name] = value if isinstance(value, str) else json.dumps(value)
        return encoded

    def _transport_exceptions(self):
        if HAS_REQUESTS:
            return (requests.exceptions.ConnectionError, requests.exceptions.Timeout)
        return (ConnectionError, TimeoutError)  # fake sessions in tests without requests

    def request(self, method, path, params=None, json=None, retry=True, timeout=None):  # pylint: disable=redefined-outer-name
        """Send one API call and return the decoded JSON (``{}`` for an empty body).

        ``retry``: retry 429/502/503/504 and transport errors per the retry policy. Never set it
        for a call that creates something. ``timeout``: seconds for this call instead of the client's.
        """
        try:
            return self._request(method.upper(), path, params, json, retry, timeout or self.timeout)
        except VastError as exc:
            raise self._redact(exc)

    def _request(self, method, path, params, body, retry, timeout):
        shown_path, url = self._url(path)
        delays = self.retry_policy.delays() if retry else iter(())
        transport_errors = self._transport_exceptions()
        if body is None and method in ("DELETE", "PUT", "POST"):
            body = {}
        while True:
            self.calls += 1
            try:
                response = self.session.request(
                    method, url, params=self._encode_params(params), json=body,
                    headers=self._headers(), timeout=timeout)
            except transport_errors as exc:
                delay = next(delays, None)
                if delay is None:
                    kind = "timed out" if "timeout" in type(exc).__name__.lower() else "failed"
                    raise VastTransportError(
                        "Connection to Vast.ai %s on %s %s: %s" % (
                            kind, method, shown_path, scrub(_snippet(str(exc)), self.api_key)),
                        maybe_created=not retry)
                self.sleep(delay)
                continue

            status = response.status_code
            text = response.text
            if status in RETRY_STATUSES:
                decoded = _decode_body(text)
                if status == 429 and extract_error_code(decoded) == "search_quota_exceeded":
                    raise error_from_response(status, text, method, shown_path, response.headers)
                delay = next(delays, None)
                if delay is not None:
                    retry_after = parse_retry_after(response.headers.get("Retry-After"), now=self.clock())
                    if retry_after is not None:
                        if retry_after > self.retry_policy.max_retry_after:
                            delay = None  # asked to wait longer than we are willing to: give up now
                        else:
                            delay = retry_after
                if delay is not None:
                    self.sleep(delay)
                    continue
                exc = error_from_response(status, text, method, shown_path, response.headers)
                if status != 429:
                    exc = VastTransportError(exc.message, status=status, error=exc.error, body=exc.body,
                                             maybe_created=not retry)
                raise exc

            if self.fallback_key and tfa_session_expired(status, _decode_body(text)):
                (self.api_key, self.api_key_source), self.fallback_key = self.fallback_key, None
                continue  # refused, so nothing was done: the same request again, with the API key file's key
            if status < 200 or status >= 300:
                raise error_from_response(status, text, method, shown_path, response.headers)
            if not text or not text.strip():
                return {}
            decoded = _decode_body(text)
            if decoded is None:
                raise VastError("Vast.ai sent a reply that is not JSON on %s %s (HTTP %s): %s" % (
                    method, shown_path, status, _snippet(text)), status=status)
            if isinstance(decoded, dict) and decoded.get("success") is False:
                raise error_from_response(status, text, method, shown_path, response.headers)
            return decoded

    # -- account -------------------------------------------------------------------------------

    def current_user(self):
        return _clean(self.request("GET", "/api/v0/users/current"))

    # -- offers --------------------------------------------------------------------------------

    def search_offers(self, query):
        """POST /api/v0/bundles/ (read-only, retried)."""
        reply = self.request("POST", "/api/v0/bundles/", json=query)
        offers = reply.get("offers") if isinstance(reply, dict) else None
        if offers is None:
            return []
        if not isinstance(offers, list):
            raise VastError("Vast.ai offer search replied without an offers list.")
        return [_clean(o) for o in offers if isinstance(o, dict)]

    # -- instances -----------------------------------------------------------------------------

    def create_instance(self, offer_id, body):
        """PUT /api/v0/asks/{offer_id}/ -> new instance id. Never sent again before a look-up.

        A 502/503 reply says the service is down, but the create may still have reached it: the label is looked up,
        and the create is sent again only when no instance carries it, with the retry policy's backoff; when the
        retries run out the VastTransportError has ``unavailable=True`` (and ``maybe_created`` False only when the
        last look-up found nothing). Any other transport failure raises VastTransportError with
        ``maybe_created=True``: look the label up, for as long as a create may take, before trying again.
        """
        offer_id = _int_id(offer_id, "offer_id")
        label = body.get("label") if isinstance(body, dict) else None
        delays = self.retry_policy.delays()
        while True:
            try:
                # The official client waits 120 s; a create that gives up sooner only learns less about what it paid for.
                reply = self.request("PUT", "/api/v0/asks/%d/" % offer_id, json=body, retry=False,
                                     timeout=max(self.timeout, CREATE_TIMEOUT))
                break
            except VastTransportError as exc:
                if exc.status not in UNAVAILABLE_STATUSES or not label:
                    raise
                exc.unavailable = True
                try:
                    found = self.find_instances_by_label(label)
                except (VastTransportError, VastRateLimitError):
                    raise exc  # maybe_created stays True: whether the create took could not be checked
                if found:
                    return int(found[0]["id"])
                exc.maybe_created = False
                delay = next(delays, None)
                if delay is None:
                    raise
                self.sleep(delay)
        contract = reply.get("new_contract") if isinstance(reply, dict) else None
        try:
            return int(contract)
        except (TypeError, ValueError):
            raise VastError("Vast.ai accepted offer %d but sent no new_contract id: %s" % (
                offer_id, scrub(_snippet(json.dumps(_clean(reply))), self.api_key)), maybe_created=True)

    def list_instances(self, select_filters=None):
        """GET /api/v1/instances/ paged with next_token until it is falsy."""
        params = {
            "select_filters": select_filters or {},
            "order_by": [{"col": "id", "dir": "asc"}],
            "limit": 25,
        }
        rows = []
        seen_tokens = set()
        for _page in range(MAX_PAGES):
            reply = self.request("GET", "/api/v1/instances/", params=params)
            page = reply.get("instances") if isinstance(reply, dict) else None
            for row in page or []:
                if isinstance(row, dict):
                    rows.append(normalize_instance(row))
            token = reply.get("next_token") if isinstance(reply, dict) else None
            if not token:
                return rows
            if token in seen_tokens:
                raise VastError("Vast.ai instance list paging repeated a next_token; stopped to avoid a loop.")
            seen_tokens.add(token)
            params = dict(params, after_token=token)
        raise VastError("Vast.ai instance list did not end after %d pages." % MAX_PAGES)

    def get_instance(self, instance_id):
        """GET /api/v0/instances/{id}/?owner=me; None when it does not exist (any more)."""
        instance_id = _int_id(instance_id, "instance_id")
        try:
            reply = self.request("GET", "/api/v0/instances/%d/" % instance_id, params={"owner": "me"})
        except VastNotFoundError:
            return None
        inst = reply.get("instances") if isinstance(reply, dict) else None
        if isinstance(inst, list):  # tolerate a list under the plural key
            inst = next((i for i in inst if isinstance(i, dict) and _same_id(i.get("id"), instance_id)), None)
        if not isinstance(inst, dict):
            return None
        return normalize_instance(inst)

    def find_instances_by_label(self, label):
        rows = self.list_instances(select_filters={"label": {"in": [label]}})
        return [r for r in rows if r.get("label") == label]

    def destroy_instance(self, instance_id):
        """DELETE /api/v0/instances/{id}/ -> True, or False when it was already gone.

        Vast.ai answers a destroy of an id it no longer knows with 404, or with 400 "invalid instance_id"; the
        400 is believed only once a look-up confirms the instance is gone, so a live instance is never
        reported destroyed.
        """
        instance_id = _int_id(instance_id, "instance_id")
        try:
            self.request("DELETE", "/api/v0/instances/%d/" % instance_id, json={})
        except VastNotFoundError:
            return False
        except VastError as exc:
            if exc.error in ("no_such_instance", "not_found"):
                return False
            if exc.status == 400 and "invalid instance" in exc.message.lower().replace("_", " "):
                if self.get_instance(instance_id) is None:
                    return False
            raise
        return True

    def set_instance_state(self, instance_id, state):
        if state not in ("running", "stopped"):
            raise VastConfigError("state must be 'running' or 'stopped', got %r" % (state,))
        instance_id = _int_id(instance_id, "instance_id")
        return self.request("PUT", "/api/v0/instances/%d/" % instance_id, json={"state": state})

    def set_instance_label(self, instance_id, label):
        instance_id = _int_id(instance_id, "instance_id")
        return self.request("PUT", "/api/v0/instances/%d/" % instance_id, json={"label": label})

    # -- ssh keys ------------------------------------------------------------------------------

    def list_ssh_keys(self):
        try:
            reply = self.request("GET", "/api/v0/ssh/")
        except VastNotFoundError:
            return []  # "No SSH keys found for the user."
        if isinstance(reply, dict):
            reply = reply.get("ssh_keys") or reply.get("keys") or []
        if not isinstance(reply, list):
            return []
        return [normalize_ssh_key(k) for k in reply if isinstance(k, dict) and not k.get("deleted_at")]

    def add_ssh_key(self, public_key):
        reply = self.request("POST", "/api/v0/ssh/", json={"ssh_key": public_key}, retry=False)
        key = reply.get("key") if isinstance(reply, dict) else None
        if not isinstance(key, dict):
            key = {"key": public_key}
        return normalize_ssh_key(key)

    def delete_ssh_key(self, key_id):
        key_id = _int_id(key_id, "key_id")
        try:
            self.request("DELETE", "/api/v0/ssh/%d/" % key_id, json={})
        except VastNotFoundError:
            return False
        return True

    def attach_ssh_key(self, instance_id, public_key):
        """POST /api/v0/instances/{id}/ssh/. Attaching the same key twice is harmless, so it is retried."""
        instance_id = _int_id(instance_id, "instance_id")
        return self.request("POST", "/api/v0/instances/%d/ssh/" % instance_id, json={"ssh_key": public_key})


def _int_id(value, name):
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise VastConfigError("%s must be an integer id, got %r" % (name, value))
    if number < 0:
        raise VastConfigError("%s must be a positive integer id, got %r" % (name, value))
    return number


def _same_id(a, b):
    try:
        return int(a) == int(b)
    except (TypeError, ValueError):
        return False

"""HTTP front of the emulator: routing, auth, injected faults and the request log.

Nothing here logs headers or query strings: the API key travels in one or the other.
"""

import hmac
import json
import re
import sys
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from .account import ApiError, envelope

AUTH_ERROR = {"success": False, "error": "auth_error", "msg": "Invalid user key"}
# A known key without the permission (docs: 401 or 403 for "a scoped key that lacks the required permission"; the
# body is the one the API reference documents for an instance a key may not touch, GET request_logs' 403).
NOT_AUTHORIZED = {"success": False, "error": "not_authorized", "msg": "Not authorized for this instance or endpoint"}
RATE_LIMIT_BODY = {"detail": "API requests too frequent endpoint threshold=4.5"}
SERVER_ERROR_HTML = (b"<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
                     b"<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n"
                     b"<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")

REQUIRED, OPTIONAL, CONTROL = "required", "optional", "control"
# The account key, or an instance's own key (CONTAINER_API_KEY) on that instance: Vast's docs give it show, start,
# stop and destroy of "that specific instance" and nothing else (README: where each name comes from).
OWN_INSTANCE = "own_instance"


def _routes(account):
    """(method, path pattern without trailing slash, auth mode, handler(match, params, body))."""
    instance = r"/api/v0/instances/(\d+)"
    return [
        ("GET", r"/_emulator/state", CONTROL, lambda m, p, b: account.state()),
        ("POST", r"/_emulator/faults", CONTROL, lambda m, p, b: account.set_faults(b)),
        ("POST", r"/_emulator/preempt/(\d+)", CONTROL, lambda m, p, b: account.preempt(int(m[1]), b)),
        ("POST", r"/_emulator/reset", CONTROL, lambda m, p, b: account.reset()),
        ("POST", r"/api/v0/bundles", OPTIONAL, lambda m, p, b: account.search_offers({} if b is None else b)),
        ("GET", r"/api/v0/bundles", OPTIONAL, lambda m, p, b: account.search_offers(_json_query(p))),
        ("PUT", r"/api/v0/asks/(\d+)", REQUIRED, lambda m, p, b: account.create_instance(int(m[1]), b)),
        ("GET", r"/api/v1/instances", REQUIRED, lambda m, p, b: account.list_instances(p)),
        ("GET", r"/api/v0/instances", REQUIRED, lambda m, p, b: _gone()),
        ("GET", instance, OWN_INSTANCE, lambda m, p, b: account.show_instance(int(m[1]))),
        ("PUT", instance, OWN_INSTANCE, lambda m, p, b: account.update_instance(int(m[1]), b)),
        ("DELETE", instance, OWN_INSTANCE, lambda m, p, b: account.destroy_instance(int(m[1]))),
        ("PUT", r"/api/v0/instances/reboot/(\d+)", REQUIRED, lambda m, p, b: account.reboot_instance(int(m[1]))),
        ("POST", instance + r"/ssh", REQUIRED, lambda m, p, b: account.attach_ssh_key(int(m[1]), b)),
        ("GET", r"/api/v0/ssh", REQUIRED, lambda m, p, b: account.list_ssh_keys()),
        ("POST", r"/api/v0/ssh", REQUIRED, lambda m, p, b: account.add_ssh_key(b)),
        ("PUT", r"/api/v0/ssh/(\d+)", REQUIRED, lambda m, p, b: account.update_ssh_key(int(m[1]), b)),
        ("DELETE", r"/api/v0/ssh/(\d+)", REQUIRED, lambda m, p, b: account.delete_ssh_key(int(m[1]))),
        ("GET", r"/api/v0/users/current", REQUIRED, lambda m, p, b: account.current_user()),
    ]


def _json_query(params):
    try:
        return json.loads(params.get("q") or "{}")
    except ValueError:
        raise envelope(400, "invalid_request", "q must be URL-encoded JSON")


def _gone():
    raise envelope(410, "gone", "Use /api/v1/instances/ instead")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real API behind nginx

    def version_string(self):
        return "nginx"

    def do_GET(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    def log_message(self, format, *args):
        """Silenced: the default access log would print query strings, where an api_key may sit."""

    def _dispatch(self):
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        params = {name: values[-1] for name, values in parse_qs(parts.query, keep_blank_values=True).items()}
        body = self._read_body()
        route = self._find_route(path)
        status = self._respond(route, path, params, body)
        if route is None or route[2] != CONTROL:
            self.server.account.log_request(self.command, parts.path, status)

    def _find_route(self, path):
        for method, pattern, auth, handler in self.server.routes:
            match = pattern.fullmatch(path)
            if match and method == self.command:
                return method, match, auth, handler
        return None

    def _respond(self, route, path, params, body):
        try:
            if route is None:
                raise envelope(404, "not_found", "No such endpoint: %s %s" % (self.command, path))
            _method, match, auth, handler = route
            if auth != CONTROL:
                self._check_faults_and_auth(auth, params, path, match, body)
            if isinstance(body, ApiError):
                raise body
            return self._send(200, handler(match, params, body))
        except ApiError as error:
            return self._send(error.status, error.body, error.content_type)
        except Exception:  # a bug in the emulator must still answer, and must show up in its stderr
            traceback.print_exc(file=sys.stderr)
            return self._send(500, {"success": False, "error": "server_error", "msg": "emulator internal error"})

    def _check_faults_and_auth(self, auth, params, path, match, body):  # pylint: disable=too-many-arguments
        account = self.server.account
        request = "%s %s/" % (self.command, path)
        if account.consume_fault("rate_limit", request):
            raise ApiError(429, RATE_LIMIT_BODY)
        if account.consume_fault("server_error", request):
            raise ApiError(503, SERVER_ERROR_HTML, "text/html")
        key = self._presented_key(params)
        if key is None and auth == OPTIONAL:
            return
        if key is not None and hmac.compare_digest(key.encode(), self.server.api_key.encode()):
            return
        own_instance = account.instance_with_key(key) if key else None
        if own_instance is None:
            raise ApiError(401, AUTH_ERROR)
        # An instance's key: its own instance only, and of the state changes only start and stop (no label).
        if auth != OWN_INSTANCE or int(match[1]) != own_instance:
            raise ApiError(403, NOT_AUTHORIZED)
        if self.command == "PUT" and not (isinstance(body, dict) and set(body) <= {"state"}):
            raise ApiError(403, NOT_AUTHORIZED)

    def _presented_key(self, params):
        header = self.headers.get("Authorization")
        if header is not None:
            scheme, _space, token = header.partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
        return params.get("api_key")

    def _read_body(self):
        """The decoded JSON body, None when empty, or an ApiError to answer once auth has passed."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return envelope(400, "invalid_args", "Request body is not valid JSON")

    def _send(self, status, body, content_type="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        return status


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, account, api_key):
        super().__init__(address, Handler)
        self.account = account
        self.api_key = api_key
        self.routes = [(method, re.compile(pattern), auth, handler)
                       for method, pattern, auth, handler in _routes(account)]

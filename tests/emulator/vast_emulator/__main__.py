"""Entry point: python -m vast_emulator --host 127.0.0.1 --port 0 --state-dir DIR [--catalog F] [--image I]
[--missing-image IMAGE ...] [--api-key K]"""

import argparse
import json
import os
import secrets
import signal
import sys
import threading

from .account import Account
from .containers import Docker, state_dir_hash
from .server import EmulatorServer

DEFAULT_IMAGE = "voltx-vastai-host:latest"


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="vast_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--catalog", help="offers JSON ({\"offers\": [...]}); default: the bundled catalog.json")
    parser.add_argument("--image", default=DEFAULT_IMAGE, help="image every rented instance runs")
    parser.add_argument("--missing-image", action="append", dest="missing_images", metavar="IMAGE", default=[],
                        help="an image the emulated registry does not have (its pull fails); repeatable. Any other "
                             "well-formed image reference pulls (and runs as --image)")
    parser.add_argument("--api-key", default=os.environ.get("VAST_EMULATOR_API_KEY"),
                        help="the one valid key (or env VAST_EMULATOR_API_KEY, which keeps it out of `ps`); "
                             "default: a random 64-hex key")
    return parser.parse_args(argv)


def write_ready_file(state_dir, ready):
    """DIR/emulator.json holds the key, so it is created private and replaced atomically."""
    path = os.path.join(state_dir, "emulator.json")
    temporary = path + ".tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(ready, handle)
    os.replace(temporary, path)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.state_dir, exist_ok=True)
    api_key = args.api_key or secrets.token_hex(32)
    docker = Docker(args.image, state_dir_hash(args.state_dir))
    account = Account(docker, args.catalog, args.missing_images)
    server = EmulatorServer((args.host, args.port), account, api_key)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # serve_forever runs in a thread so the main thread can wait for a signal and call shutdown().
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()

    host, port = server.server_address[:2]
    ready = {"url": "http://%s:%d" % (host, port), "api_key": api_key}
    write_ready_file(args.state_dir, ready)
    sys.stdout.write(json.dumps(ready) + "\n")
    sys.stdout.flush()

    while not stop.wait(0.5):
        pass
    server.shutdown()
    account.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

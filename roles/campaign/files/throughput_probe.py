"""voltx.vastai.campaign — measure the controller <-> instance throughput over the instance's own SSH, both directions.

Run on the controller by the burn-in, with ssh's argv up to (not including) the remote command. Prints one JSON
line: {"upload_mbit": ..., "download_mbit": ..., "bytes": N}. Upload is controller -> host (the direction the
campaign's archives take), timed on the host from its first MiB to its last byte, so the SSH handshake is not
counted; download is timed the same way on the controller.
"""

import argparse
import json
import os
import subprocess
import sys
import time

CHUNK = 1 << 20  # the first chunk is the warm-up: the clock starts once it has arrived

# On the host: swallow the warm-up, then time the rest (GNU head reads no more than asked from a pipe).
UPLOAD_SINK = 'head -c %d >/dev/null; s=$(date +%%s%%N); head -c %d >/dev/null; e=$(date +%%s%%N); echo $((e - s))'
DOWNLOAD_SOURCE = "head -c %d /dev/urandom"


def mbit_per_s(nbytes, seconds):
    """Megabits per second; a transfer too quick for the clock counts as one microsecond."""
    return round(nbytes * 8 / max(seconds, 1e-6) / 1e6, 1)


def upload(ssh, nbytes):
    """Send nbytes of random data (incompressible, whatever ssh's Compression says); the host times them."""
    timed = nbytes - CHUNK
    proc = subprocess.Popen(ssh + [UPLOAD_SINK % (CHUNK, timed)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    block = os.urandom(CHUNK)
    try:
        for _chunk in range(nbytes // CHUNK):
            proc.stdin.write(block)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    out = proc.stdout.read()
    if proc.wait() != 0:
        raise RuntimeError("the upload probe failed: ssh exited %d" % proc.returncode)
    nanoseconds = int(out.decode().strip().splitlines()[-1])
    return mbit_per_s(timed, nanoseconds / 1e9)


def download(ssh, nbytes):
    """Receive nbytes from the host's /dev/urandom, timed from the end of the first MiB to the last byte."""
    proc = subprocess.Popen(ssh + [DOWNLOAD_SOURCE % nbytes], stdout=subprocess.PIPE)
    received, warm, started = 0, 0, None
    while True:
        data = proc.stdout.read1(CHUNK)
        if not data:
            break
        received += len(data)
        if started is None and received >= CHUNK:
            started, warm = time.monotonic(), received
    ended = time.monotonic()
    if proc.wait() != 0 or received != nbytes or started is None:
        raise RuntimeError("the download probe failed: %d of %d bytes, ssh exited %d" % (received, nbytes, proc.returncode))
    return mbit_per_s(received - warm, ended - started)


def probe(ssh, megabytes):
    nbytes = max(int(megabytes), 2) * CHUNK
    return {"upload_mbit": upload(ssh, nbytes), "download_mbit": download(ssh, nbytes), "bytes": nbytes}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=16, help="MiB each way (at least 2)")
    parser.add_argument("ssh", nargs=argparse.REMAINDER, help="ssh's argv up to the remote command")
    args = parser.parse_args(argv)
    ssh = args.ssh[1:] if args.ssh[:1] == ["--"] else args.ssh
    if not ssh:
        parser.error("give the ssh command after --")
    try:
        print(json.dumps(probe(ssh, args.megabytes)))
    except (OSError, RuntimeError, ValueError) as error:
        print("throughput probe: %s" % error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

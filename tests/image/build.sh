#!/usr/bin/env bash
# Builds the test bed's container host image without any registry and prints its name.
# The tag is a hash of this recipe, so the image is rebuilt only when the recipe changes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=${VOLTX_TEST_IMAGE_REPO:-voltx-vastai-host}
suite=${VOLTX_DEBIAN_SUITE:-bookworm}
# What a fresh nvidia/cuda:*-devel-ubuntu22.04 container offers once Vast.ai's SSH launch mode has put sshd in
# it: root, bash, apt, sshd, CA certificates. No python3 and no sudo: the collection must bootstrap python3 itself.
packages=openssh-server,ca-certificates

# Parallel test workers may all ask for the image at once: one builds, the others wait for it.
exec 9>"${TMPDIR:-/tmp}/voltx-test-image.lock"
flock 9

recipe_hash=$(cat "$here/build.sh" "$here/Dockerfile" "$here/entrypoint.sh" | sha256sum | cut -c1-12)
image="$repo:$recipe_hash"
if docker image inspect "$image" >/dev/null 2>&1; then
    echo "$image"
    exit 0
fi

log() { echo "build.sh: $*" >&2; }

# A Debian base already in Docker (loaded by hand or kept from an earlier build) is reused.
base=""
for candidate in ${VOLTX_BASE_IMAGE:-} "voltx-bare-base:$suite"; do
    if docker image inspect "$candidate" >/dev/null 2>&1; then base=$candidate; break; fi
done

if [ -z "$base" ]; then
    base="voltx-bare-base:$suite"
    command -v debootstrap >/dev/null || { log "installing debootstrap"; apt-get update -qq >&2; apt-get install -y -qq debootstrap >&2; }
    rootfs=$(mktemp -d /var/tmp/voltx-rootfs.XXXXXX)
    trap 'rm -rf "$rootfs"' EXIT
    mirror=$(grep -rhoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
             | awk '{print $2}' | head -n1 || true)
    log "debootstrap $suite from ${mirror:-the default mirror} into $rootfs"
    if ! debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" ${mirror:+"$mirror"} > "$rootfs.log" 2>&1; then
        tail -n 30 "$rootfs.log" >&2; log "debootstrap failed (full log: $rootfs.log)"; exit 1
    fi
    rm -f "$rootfs.log"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | docker import - "$base" >&2
else
    log "using local base image $base"
fi

DOCKER_BUILDKIT=0 docker build -q --build-arg BASE_IMAGE="$base" -t "$image" "$here" >&2
# The host must be as bare as the rented image: sshd and apt, and neither python3 nor sudo.
if ! docker run --rm --entrypoint sh "$image" -c 'command -v sshd && command -v apt-get && command -v bash && ! command -v python3 && ! command -v sudo' >/dev/null; then
    log "base image $base is not bare (needs sshd, apt-get, bash; must not have python3 or sudo); remove it or set VOLTX_BASE_IMAGE"
    docker rmi "$image" >/dev/null 2>&1 || true
    exit 1
fi
docker tag "$image" "$repo:latest"
# Older recipes' tags only take space; untagging leaves running containers alone.
docker images "$repo" --format '{{.Tag}}' | grep -vx -e "$recipe_hash" -e latest | sed "s|^|$repo:|" | xargs -r docker rmi >/dev/null || true
echo "$image"

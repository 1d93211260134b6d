#!/bin/sh
# Build the Python base image from Debian packages, for hosts where no image registry answers.
#
#   deploy/offline/base-image.sh [TAG]        (default TAG: pulsar-relay-base:python3.11-bookworm)
#
# deploy/Dockerfile builds FROM ${PYTHON_IMAGE}, by default the official python:3.11-slim-bookworm
# pinned by digest.  Where that cannot be pulled, this script makes a stand-in with the same
# interpreter series and layout the Dockerfile relies on: Debian bookworm (minbase) with python3.11,
# venv and pip, `python`/`pip` in /usr/local/bin, and the host's CA bundle so pip inside a build
# reaches the package index the way this host does.  No credentials go into the image: pip's
# settings that name an index are passed to `docker build` as build args, not stored.
#
#   docker build -f deploy/Dockerfile --target services \
#     --build-arg PYTHON_IMAGE=pulsar-relay-base:python3.11-bookworm -t pulsar-relay .
#
# Needs root, debootstrap (installed with apt-get when missing) and a Debian mirror
# (DEBIAN_MIRROR, default http://deb.debian.org/debian).  Does nothing if TAG already exists
# (FORCE=1 rebuilds it).
set -eu

tag=${1:-pulsar-relay-base:python3.11-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ca_bundle=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

if [ "${FORCE:-0}" != 1 ] && docker image inspect "$tag" >/dev/null 2>&1; then
    echo "base image $tag exists (FORCE=1 rebuilds it)"
    exit 0
fi
if ! command -v debootstrap >/dev/null; then
    command -v apt-get >/dev/null && [ "$(id -u)" = 0 ] || {
        echo "debootstrap is needed: apt-get install debootstrap" >&2
        exit 1
    }
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

root=$(mktemp -d "${TMPDIR:-/tmp}/relay-rootfs.XXXXXX")
trap 'rm -rf "$root"' EXIT
echo "debootstrap bookworm into $root (a few minutes)"
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$root" "$mirror" >"$root.log" 2>&1 || {
    tail -20 "$root.log" >&2
    rm -f "$root.log"
    exit 1
}
rm -f "$root.log"
# The layout of the official image: python and pip on PATH in /usr/local/bin.
ln -sf /usr/bin/python3 "$root/usr/local/bin/python"
ln -sf /usr/bin/python3 "$root/usr/local/bin/python3"
ln -sf /usr/bin/pip3 "$root/usr/local/bin/pip"
# The host's trust store (a host behind an inspecting proxy has its CA in it).
if [ -f "$ca_bundle" ]; then
    cp "$ca_bundle" "$root/etc/ssl/certs/ca-certificates.crt"
fi
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
tar -C "$root" -c . | docker import \
    -c 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
    -c 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    -c 'CMD ["python3"]' - "$tag"
echo "built $tag"

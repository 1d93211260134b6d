#!/bin/sh
# A Docker engine for `make test-docker`: use the one that answers, else start dockerd (installing
# Debian's docker.io first when it is missing and apt-get can), and wait until `docker info` works.
#
# Exit 0: an engine answers.  Exit 3: there is no way to get one here (not root, no apt-get, or
# dockerd will not start); the message says why, and make skips the container tests.
set -u
log=${DOCKERD_LOG:-/tmp/relay-dockerd.log}

docker info >/dev/null 2>&1 && exit 0

no_engine() {
    echo "no Docker engine: $*" >&2
    exit 3
}

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || no_engine "docker.io is not installed and installing it needs root"
    command -v apt-get >/dev/null 2>&1 || no_engine "docker.io is not installed and there is no apt-get"
    echo "installing docker.io"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null; } ||
        no_engine "apt-get install docker.io failed"
fi

docker info >/dev/null 2>&1 && exit 0
[ "$(id -u)" = 0 ] || no_engine "dockerd is not running and starting it needs root"
echo "starting dockerd (log: $log)"
# Left running after the tests, like a system service: images and build cache stay for the next run.
nohup dockerd --storage-driver overlay2 >"$log" 2>&1 &
i=0
while ! docker info >/dev/null 2>&1; do
    i=$((i + 1))
    [ "$i" -le 60 ] || { tail -20 "$log" >&2; no_engine "dockerd did not answer within 60 s"; }
    sleep 1
done
echo "dockerd is up"

#!/bin/sh
# Build the relay's images from deploy/Dockerfile, once, and make sure the third-party images that
# deploy/compose.yaml names are present:
#
#   pulsar-relay:latest      target services (compose's auth, ingest and gateways)
#   pulsar-relay:allinone    target allinone (Valkey and the relay in one container)
#   valkey, haproxy          valkey/valkey:8-alpine and haproxy:3.0-alpine, pulled; where no image
#                            registry answers, stand-ins made from Debian packages instead
#                            (pulsar-relay-offline/valkey and /haproxy, deploy/offline/Dockerfile)
#
# The base is deploy/Dockerfile's PYTHON_IMAGE (python:3.11-slim-bookworm pinned by digest) when
# it can be pulled, else the Debian-made stand-in from deploy/offline/base-image.sh.  Builds use
# Docker's layer cache, so a second run only rebuilds what changed.  pip settings that name an
# index (PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, http(s) only) are passed as build args of the build
# stage, which the final images do not keep.
set -eu
cd "$(dirname "$0")/.."

# Debian's docker.io (bookworm) has no buildx; the classic builder reads this Dockerfile as it is.
DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-0}
export DOCKER_BUILDKIT
relay_tag=${PULSAR_RELAY_IMAGE:-pulsar-relay:latest}
allinone_tag=${PULSAR_RELAY_ALLINONE_IMAGE:-pulsar-relay:allinone}
offline_base=pulsar-relay-base:python3.11-bookworm

have() { docker image inspect "$1" >/dev/null 2>&1; }
# A registry that does not answer fails fast (DNS); one that is slow gets two minutes.
pull() { have "$1" || timeout 120 docker pull -q "$1" >/dev/null 2>&1; }

pinned=$(sed -n 's/^ARG PYTHON_IMAGE=//p' deploy/Dockerfile)
if pull "$pinned"; then
    base=$pinned
else
    echo "cannot pull $pinned: using the Debian-made base $offline_base"
    deploy/offline/base-image.sh "$offline_base"
    base=$offline_base
fi

set -- --build-arg "PYTHON_IMAGE=$base"
for name in PIP_INDEX_URL PIP_EXTRA_INDEX_URL; do
    value=$(printenv "$name" || true)
    case "$value" in http://* | https://*) set -- "$@" --build-arg "$name=$value" ;; esac
done
echo "building $relay_tag and $allinone_tag from $base"
docker build -q -f deploy/Dockerfile --target services "$@" -t "$relay_tag" . >/dev/null
docker build -q -f deploy/Dockerfile --target allinone "$@" -t "$allinone_tag" . >/dev/null

for pair in valkey=valkey/valkey:8-alpine haproxy=haproxy:3.0-alpine; do
    target=${pair%%=*}
    official=${pair#*=}
    if pull "$official"; then
        echo "$target: $official"
    else
        have "$offline_base" || deploy/offline/base-image.sh "$offline_base"
        echo "$target: cannot pull $official, building pulsar-relay-offline/$target from Debian packages"
        docker build -q -f deploy/offline/Dockerfile --target "$target" \
            --build-arg "BASE_IMAGE=$offline_base" -t "pulsar-relay-offline/$target" deploy/offline >/dev/null
    fi
done

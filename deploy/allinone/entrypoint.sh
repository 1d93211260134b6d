#!/bin/sh
# Entrypoint of the one-container image: refuse bad settings before anything starts, decide whether
# the bundled Valkey runs, then exec the command (by default supervisord with the supervisord.conf
# beside this script).
#
#   PULSAR_JWT_SECRET_KEY    required (unless PULSAR_JWT_ALGORITHM is EdDSA or ES256)
#   RELAY_BUNDLED_VALKEY     auto (default) | yes | no.  auto runs the bundled Valkey unless the
#                            relay is pointed elsewhere: PULSAR_VALKEY_URL set, PULSAR_VALKEY_HOST
#                            not loopback, or PULSAR_STORAGE_BACKEND=memory.
#
# Exit status 64 for a refused configuration (nothing has been started then).
set -eu

refuse() {
    echo "pulsar-relay: $*" >&2
    exit 64
}

if [ -z "${PULSAR_JWT_SECRET_KEY:-}" ] && [ "${PULSAR_JWT_ALGORITHM:-HS256}" = "HS256" ]; then
    refuse "PULSAR_JWT_SECRET_KEY is not set; refusing to start.
  It signs every access token and must be the same across restarts. Generate one with
    python3 -c 'import secrets; print(secrets.token_urlsafe(48))'
  and pass it with -e PULSAR_JWT_SECRET_KEY=... (or --env-file)."
fi

# Defaults for everything supervisord.conf refers to (the image's ENV sets the same ones).
: "${PULSAR_HOST:=0.0.0.0}" "${PULSAR_PORT:=8080}" "${PULSAR_VALKEY_PORT:=6379}"
: "${RELAY_VALKEY_SERVER:=redis-server}" "${RELAY_VALKEY_DIR:=/var/lib/valkey}"
: "${RELAY_RUN_DIR:=/run/pulsar-relay}" "${RELAY_BUNDLED_VALKEY:=auto}"
export PULSAR_HOST PULSAR_PORT PULSAR_VALKEY_PORT RELAY_VALKEY_SERVER RELAY_VALKEY_DIR RELAY_RUN_DIR

# Every other setting is checked by the relay's own loader, so a weak secret or a typo in a
# PULSAR_* value is reported here rather than by a relay that supervisord restarts in a loop.  It
# also says where the settings point storage: "local" (a loopback Valkey, no URL, no cluster), and
# whether a password or TLS is configured.
storage=$(
    python3 - <<'PY'
import sys

from relaycore import config

try:
    s = config.load()
except config.ConfigError as exc:
    sys.exit(f"pulsar-relay: configuration error: {exc}")
local = (
    s.storage_backend == "valkey"
    and not s.valkey_url
    and not getattr(s, "valkey_cluster_nodes", "")  # a cluster is always elsewhere
    and s.valkey_host in ("localhost", "127.0.0.1", "::1")
)
print("local" if local else "elsewhere", "secured" if s.valkey_password or s.valkey_use_tls else "plain")
PY
) || exit 64

case "$RELAY_BUNDLED_VALKEY" in
    yes | true | 1) bundled=true ;;
    no | false | 0) bundled=false ;;
    auto) case "$storage" in local*) bundled=true ;; *) bundled=false ;; esac ;;
    *) refuse "RELAY_BUNDLED_VALKEY must be auto, yes or no, not '$RELAY_BUNDLED_VALKEY'" ;;
esac
RELAY_VALKEY_AUTOSTART=$bundled
export RELAY_VALKEY_AUTOSTART

if [ "$bundled" = true ]; then
    command -v "$RELAY_VALKEY_SERVER" >/dev/null ||
        refuse "RELAY_VALKEY_SERVER=$RELAY_VALKEY_SERVER is not on PATH (the image has redis-server)"
    # The bundled Valkey listens on loopback only and has no password or TLS; a client that sends
    # either would be refused by it.
    if [ "${storage#* }" = "secured" ]; then
        refuse "PULSAR_VALKEY_PASSWORD and PULSAR_VALKEY_USE_TLS are for an external Valkey;
  the bundled one listens on loopback only. Unset them, or set PULSAR_VALKEY_HOST to your Valkey."
    fi
    mkdir -p "$RELAY_VALKEY_DIR" 2>/dev/null || true
    if ! [ -d "$RELAY_VALKEY_DIR" ] || ! [ -w "$RELAY_VALKEY_DIR" ]; then
        refuse "$RELAY_VALKEY_DIR (Valkey's data) is not a directory writable by uid $(id -u).
  For a bind mount: chown $(id -u):$(id -g) the host directory, or use a named volume."
    fi
fi
mkdir -p "$RELAY_RUN_DIR"

# No command: supervisord with the configuration next to this script.
[ "$#" -gt 0 ] || set -- supervisord -c "$(dirname "$0")/supervisord.conf"
exec "$@"

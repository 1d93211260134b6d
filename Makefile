# The verbs.  `make` = lint + typecheck + tests.  Everything installs itself into .venv.
VENV ?= .venv
PY := $(VENV)/bin/python
PACKAGES := -p relaycore -p auth -p ingest -p gateway -p pulsar_relay
.DEFAULT_GOAL := all

# requirements.lock pins every package (runtime and dev) that CI tested; `make install`, CI and
# deploy/Dockerfile install from it.  requirements-min.lock holds the runtime dependencies at the
# lower bounds pyproject.toml declares (the rest as locked), for `make test-min`.  Both are generated
# by uv from pyproject.toml: after changing a dependency run `make lock` (keeps the other pins), to
# move everything to the newest allowed versions `make lock UPGRADE=--upgrade`.
LOCK := requirements.lock
LOCK_MIN := requirements-min.lock
UV_COMPILE = $(VENV)/bin/uv pip compile -q --python-version 3.11 pyproject.toml

$(VENV)/.installed: pyproject.toml $(LOCK)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c $(LOCK) -e '.[dev]'
	touch $@

.PHONY: install lock valkey peers js lint typecheck test test-min test-docker test-cluster test-fast run stack bench all fmt clean
install: $(VENV)/.installed

# uv alone (as locked), so that a pyproject.toml the current lock conflicts with can still be locked.
$(VENV)/bin/uv:
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -c $(LOCK) uv

lock: $(VENV)/bin/uv
	$(UV_COMPILE) --extra dev $(UPGRADE) -o $(LOCK)
	$(UV_COMPILE) --resolution lowest-direct --no-deps --no-header --no-annotate -o $(VENV)/min-direct.txt
	$(UV_COMPILE) --extra dev -c $(VENV)/min-direct.txt $(UPGRADE) -o $(LOCK_MIN)
	@echo "regenerated $(LOCK) and $(LOCK_MIN); make install picks them up"

# The declared lower bounds, tested: runtime dependencies at their minimum versions in a venv of their
# own, running the storage, ingest, gateway and Valkey Cluster tests.
VENV_MIN ?= .venv-min
$(VENV_MIN)/.installed: pyproject.toml $(LOCK_MIN)
	test -x $(VENV_MIN)/bin/python || python3 -m venv $(VENV_MIN)
	$(VENV_MIN)/bin/python -m pip install -q --upgrade pip
	$(VENV_MIN)/bin/python -m pip install -q -c $(LOCK_MIN) -e '.[dev]'
	touch $@

test-min: $(VENV_MIN)/.installed valkey
	$(VENV_MIN)/bin/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile tests/contract tests/unit tests/ingest tests/gateway tests/cluster

# System tools the tests use: a Valkey (or Redis 7) server and HAProxy; Debian packages when missing.
APT_INSTALL = DEBIAN_FRONTEND=noninteractive apt-get install -y -qq
valkey:
	@command -v valkey-server >/dev/null || command -v redis-server >/dev/null || \
	  { command -v apt-get >/dev/null && (apt-get update -qq && $(APT_INSTALL) redis-server >/dev/null); } || \
	  { echo "need valkey-server or redis-server on PATH (or Docker for testcontainers)"; exit 1; }
	@command -v haproxy >/dev/null || { command -v apt-get >/dev/null && apt-get update -qq && $(APT_INSTALL) haproxy >/dev/null; } || \
	  echo "haproxy not installed: split-stack tests will be skipped"
	@test -x /usr/bin/chromium || { command -v apt-get >/dev/null && apt-get update -qq && $(APT_INSTALL) chromium fonts-dejavu-core >/dev/null; } || \
	  echo "chromium not installed: console browser tests will be skipped"
	@command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || \
	  { command -v apt-get >/dev/null && apt-get update -qq && $(APT_INSTALL) docker-compose >/dev/null; } || \
	  echo "no Compose CLI: compose checks will be skipped"

lint: install
	$(VENV)/bin/ruff check libs services pulsar_relay tests bench
	$(VENV)/bin/ruff format --check libs services pulsar_relay tests bench

fmt: install
	$(VENV)/bin/ruff format libs services pulsar_relay tests bench
	$(VENV)/bin/ruff check --fix libs services pulsar_relay tests bench

typecheck: install
	MYPYPATH=libs:services:. $(VENV)/bin/mypy $(PACKAGES)

# The `ws` package for running the seed README's JavaScript examples in Node, playwright-core for
# the console's browser tests, and the `oidc-provider` the OIDC sign-in tests run (skipped without node).
js:
	@command -v npm >/dev/null && npm install --silent --prefix tests/compat/js --no-audit --no-fund --no-package-lock && \
	  npm install --silent --prefix tests/console/js --no-audit --no-fund --no-package-lock && \
	  npm install --silent --prefix tests/oidc/provider --no-audit --no-fund --no-package-lock || \
	  echo "npm not found: the JavaScript example, console browser and OIDC tests will be skipped"

# tests/docker runs under `make test-docker`, which starts the engine and builds the images first.
# The suite runs on TEST_WORKERS pytest-xdist workers (each with its own Valkey server), a test
# file per worker at a time: most tests wait on sockets and servers rather than compute.
# TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
test: install valkey js lint typecheck
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --ignore=tests/docker

# Real containers: a Docker engine (tests/docker/engine.sh installs Debian's docker.io and starts
# dockerd when it can; without any way to get one this says so and succeeds), the images built once
# from deploy/Dockerfile (deploy/build-images.sh; Debian-made bases where no registry answers), then
# the one-container image and compose tests, and the storage suite against a Valkey container.
DOCKER_VALKEY = $$(docker image inspect valkey/valkey:8-alpine >/dev/null 2>&1 && echo valkey/valkey:8-alpine || echo pulsar-relay-offline/valkey)
test-docker: install valkey
	@sh tests/docker/engine.sh; rc=$$?; \
	  if [ $$rc -eq 3 ]; then echo "make test-docker: SKIPPED, no Docker engine can run on this machine"; exit 0; fi; \
	  test $$rc -eq 0 && deploy/build-images.sh && \
	  TESTCONTAINERS_RYUK_DISABLED=true RELAY_TEST_VALKEY_IMAGE=$(DOCKER_VALKEY) \
	    $(PY) -m pytest -p no:cacheprovider tests/docker tests/contract/test_store_messages.py

test-cluster: install valkey
	$(PY) -m pytest -q tests/cluster

test-fast: install valkey
	$(PY) -m pytest -x -q -m "not slow"

# PORT=9000 (and for stack GATEWAYS=3) to choose; the defaults are 8080 and 2.
run: install
	$(VENV)/bin/pulsar-relay dev $(if $(PORT),--port $(PORT))

stack: install valkey
	$(VENV)/bin/pulsar-relay stack $(if $(PORT),--port $(PORT)) $(if $(GATEWAYS),--gateways $(GATEWAYS))

# The benchmark's peers from Debian packages when missing: nginx with nchan, and Pushpin (the
# suite skips, with a line saying why, a peer it cannot find).
peers:
	@test -e /usr/lib/nginx/modules/ngx_nchan_module.so || \
	  { command -v apt-get >/dev/null && apt-get update -qq && $(APT_INSTALL) libnginx-mod-nchan >/dev/null; } || \
	  echo "libnginx-mod-nchan not installed: the suite will skip nchan"
	@command -v pushpin >/dev/null || \
	  { command -v apt-get >/dev/null && apt-get update -qq && $(APT_INSTALL) pushpin >/dev/null; } || \
	  echo "pushpin not installed: the suite will skip it"

bench: install valkey peers
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) -m bench.suite --servers --profile --systems ours,reference,nchan,nchan-memory,pushpin

all: test

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .relay-data

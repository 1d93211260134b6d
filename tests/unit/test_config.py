"""relaycore.config: defaults < file < environment, the seed's YAML layout and TOML, errors that
name the key, durations, the JWT-secret guard, and the shipped example and reference docs."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from relaycore import config
from relaycore.config import ConfigError, Settings, load

SECRET = "tF3WL4PndrpwZkSi2T9Uz_G4ApA7Q0MFjZsqGrA2"
SECRET_T = "9wjnTR1dksfzj6jpfMPg_ST6ITYLiV2OelpEX30K"
SECRET_K = "RWUNv4UwCCeEFitx04exac_HOPy2LuFmNN3-BpGh"
ENV = {"PULSAR_JWT_SECRET_KEY": SECRET}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test runs in an empty directory, so no stray config.yaml is picked up."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults() -> None:
    """With only the secret set, every other setting has its default."""
    assert load(ENV) == Settings(jwt_secret_key=SECRET)


def test_precedence_defaults_file_env(tmp_path: Path) -> None:
    """The file overrides defaults; the environment overrides the file."""
    f = write(tmp_path / "c.yaml", "server:\n  http_port: 9000\n  log_level: DEBUG\nmax_body_bytes: 2048\n")
    s = load(ENV | {"PULSAR_PORT": "9100", "PULSAR_CONFIG_FILE": str(f)})
    assert (s.port, s.log_level, s.max_body_bytes) == (9100, "DEBUG", 2048)
    assert s.host == "127.0.0.1"


def test_seed_yaml_layout(tmp_path: Path) -> None:
    """The seed README's config.yaml is accepted as written."""
    seed = """
server:
  http_port: 8080
  read_timeout: 30s
  write_timeout: 30s

valkey:
  host: localhost
  port: 6379
  password: ""
  db: 0
  pool_size: 100
  # appendonly yes

storage:
  persistent_tier_retention: 24h  # Valkey streams retention
  max_messages_per_topic: 1000000 # Trim streams at this count
"""
    s = load(ENV, write(tmp_path / "config.yaml", seed))
    assert s == Settings(jwt_secret_key=SECRET)
    f = write(
        tmp_path / "other.yaml",
        "valkey:\n  host: vk.example\n  port: 6380\n  pool_size: 7\nstorage:\n  backend: memory\n",
    )
    s = load(ENV, f)
    assert (s.valkey_host, s.valkey_port, s.valkey_pool_size, s.storage_backend) == (
        "vk.example",
        6380,
        7,
        "memory",
    )


def test_toml(tmp_path: Path) -> None:
    """TOML files use the same keys and sections."""
    f = write(
        tmp_path / "relay.toml",
        'jwt_secret_key = "' + SECRET_T + '"\n[server]\nhttp_port = 9001\n'
        '[valkey]\nuse_tls = true\n[storage]\npersistent_tier_retention = "7d"\n',
    )
    s = load({}, f)
    assert (s.port, s.valkey_use_tls, s.persistent_tier_retention) == (9001, True, 7 * 86400.0)
    assert s.jwt_secret_key == SECRET_T


def test_auth_section_secret_key(tmp_path: Path) -> None:
    """auth.secret_key is the file spelling of jwt_secret_key."""
    s = load({}, write(tmp_path / "c.yaml", f"auth:\n  secret_key: {SECRET_K}\n"))
    assert s.jwt_secret_key == SECRET_K


def test_file_discovery(tmp_path: Path) -> None:
    """PULSAR_CONFIG_FILE wins; else config.yaml, then config.toml, in the working directory."""
    write(tmp_path / "config.toml", "port = 9003\n")
    assert load(ENV).port == 9003
    write(tmp_path / "config.yaml", "port: 9002\n")
    assert load(ENV).port == 9002
    other = write(tmp_path / "elsewhere.yaml", "port: 9004\n")
    assert load(ENV | {"PULSAR_CONFIG_FILE": str(other)}).port == 9004


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("server:\n  htp_port: 1\n", "server.htp_port"),
        ("srever:\n  http_port: 1\n", "srever"),
        ("jwt_secret: x\n", "jwt_secret"),
        ("1: 2\n", r"unknown setting\(s\) in .*: 1$"),
    ],
)
def test_unknown_keys_stop_start_up(tmp_path: Path, text: str, named: str) -> None:
    """An unknown key or section in the file is an error naming it."""
    with pytest.raises(ConfigError, match=named):
        load(ENV, write(tmp_path / "c.yaml", text))


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("server:\n  http_port: eighty\n", "server.http_port"),
        ("storage:\n  backend: floppy\n", "storage.backend"),
        ("valkey:\n  use_tls: maybe\n", "valkey.use_tls"),
        ("storage:\n  persistent_tier_retention: 10 parsecs\n", "storage.persistent_tier_retention"),
        ("login_rate_limit_window: -5\n", "LOGIN_RATE_LIMIT_WINDOW"),
        ("server:\n  http_port: 70000\n", "PULSAR_PORT"),
        ("server:\n  log_level: VERBOSE\n", "PULSAR_LOG_LEVEL"),
        ("max_body_bytes: 0\n", "PULSAR_MAX_BODY_BYTES"),
        ("fanout_partitions: 5000\n", "PULSAR_FANOUT_PARTITIONS"),
        ("password_hash_memory_kib: 8\n", "PULSAR_PASSWORD_HASH_MEMORY_KIB"),
        ("forwarded_allow_ips: 10.0.0.0/8, proxy.local\n", "proxy.local"),
        ("bootstrap_admin_username: admin\n", "PULSAR_BOOTSTRAP_ADMIN_PASSWORD"),
        (
            "bootstrap_admin_username: admin\nbootstrap_admin_password: short\n",
            "PULSAR_BOOTSTRAP_ADMIN_PASSWORD",
        ),
        ("jwt_algorithm: RS256\n", "jwt_algorithm"),
        ("jwt_algorithm: EdDSA\n", "PULSAR_JWT_PUBLIC_KEY_FILE"),
        ("valkey: redis://x\n", "valkey"),
    ],
)
def test_bad_file_values_name_the_key(tmp_path: Path, text: str, named: str) -> None:
    """A value of the wrong type or out of range is an error naming the key."""
    with pytest.raises(ConfigError, match=named):
        load(ENV, write(tmp_path / "c.yaml", text))


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("PULSAR_PORT", "abc"),
        ("PULSAR_VALKEY_USE_TLS", "perhaps"),
        ("PULSAR_STORAGE_BACKEND", "floppy"),
        ("PULSAR_TAIL_BLOCK", "soon"),
    ],
)
def test_bad_env_values_name_the_variable(var: str, value: str) -> None:
    """A bad environment value is an error naming the variable."""
    with pytest.raises(ConfigError, match=var):
        load(ENV | {var: value})


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("24h", 86400.0),
        ("30s", 30.0),
        ("15m", 900.0),
        ("500ms", 0.5),
        ("1d", 86400.0),
        ("2.5h", 9000.0),
        ("45", 45.0),
        (" 10 s ", 10.0),
    ],
)
def test_durations(value: str, seconds: float) -> None:
    """Durations accept the seed's 24h/30s forms, other units, and plain seconds."""
    assert load(ENV | {"PULSAR_PERSISTENT_TIER_RETENTION": value}).persistent_tier_retention == seconds


def test_numeric_durations_in_files(tmp_path: Path) -> None:
    """Numbers in a file are seconds."""
    s = load(ENV, write(tmp_path / "c.yaml", "tail_block: 0.25\ngateway_expiry: 90\n"))
    assert (s.tail_block, s.gateway_expiry) == (0.25, 90.0)


def test_env_booleans_and_numbers() -> None:
    """Environment strings convert: 1/0/true/false for booleans, digits for numbers."""
    s = load(ENV | {"PULSAR_VALKEY_USE_TLS": "1", "PULSAR_LOG_JSON": "true", "PULSAR_VALKEY_PORT": "6390"})
    assert (s.valkey_use_tls, s.log_json, s.valkey_port) == (True, True, 6390)
    assert load(ENV | {"PULSAR_VALKEY_USE_TLS": "0"}).valkey_use_tls is False


def test_other_programs_pulsar_variables_are_allowed() -> None:
    """The client's PULSAR_RELAY_*, Pulsar's PULSAR_CONFIG_* and compose's variables do not stop start-up."""
    others = {
        "PULSAR_RELAY_URL": "http://x",
        "PULSAR_RELAY_ALLOW_INSECURE": "1",
        "PULSAR_CONFIG_FILE": "",
        "PULSAR_CONFIG_DIR": "/etc/pulsar",
        "PULSAR_CONFIG_PRIVATE_TOKEN": "x",
        "PULSAR_HTTP_PORT": "8080",
        "PULSAR_VALKEY_IMAGE": "valkey/valkey:8-alpine",
    }
    assert load(ENV | others).port == 8080


@pytest.mark.parametrize(
    ("var", "meant"),
    [
        ("PULSAR_VALKEY_URI", "PULSAR_VALKEY_URL"),
        ("PULSAR_JWT_SECRET", "PULSAR_JWT_SECRET_KEY"),
        ("PULSAR_GATEWAYID", "PULSAR_GATEWAY_ID"),
        ("PULSAR_LOGLEVEL", "PULSAR_LOG_LEVEL"),
    ],
)
def test_misspelled_variable_stops_start_up_naming_the_closest_setting(var: str, meant: str) -> None:
    """A PULSAR_* variable that is not a setting stops start-up, naming it and the closest real one."""
    with pytest.raises(ConfigError) as err:
        load(ENV | {var: "redis://valkey:6379/0"})
    assert f"{var} is not a setting (did you mean {meant}?)" in str(err.value)
    assert "PULSAR_ENV_ALLOW" in str(err.value)


def test_env_allow_lets_other_programs_variables_through() -> None:
    """PULSAR_ENV_ALLOW (names, or PREFIX_* for a prefix) keeps variables meant for something else."""
    env = ENV | {"PULSAR_MEM": "-Xmx1g", "PULSAR_TOOL_A": "1", "PULSAR_TOOL_B": "2"}
    with pytest.raises(ConfigError, match="PULSAR_MEM is not a setting"):
        load(env)
    assert load(env | {"PULSAR_ENV_ALLOW": "PULSAR_MEM, PULSAR_TOOL_*"}).port == 8080


def test_misspelled_variable_exits_2_with_one_line(tmp_path: Path) -> None:
    """`pulsar-relay serve` with a misspelled variable exits 2 with the message, no traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSAR_")}
    env |= ENV | {"PULSAR_VALKEY_URI": "redis://elsewhere:6379/0", "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run(
        [sys.executable, "-m", "pulsar_relay", "serve", "ingest", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert "PULSAR_VALKEY_URI is not a setting (did you mean PULSAR_VALKEY_URL?)" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_jwt_secret_is_refused() -> None:
    """No secret: refused, saying how to make one and naming the development flag."""
    with pytest.raises(ConfigError) as info:
        load({})
    assert "PULSAR_JWT_SECRET_KEY" in str(info.value)
    assert "secrets.token_urlsafe" in str(info.value)
    assert "PULSAR_ALLOW_INSECURE_DEFAULTS=1" in str(info.value)


@pytest.mark.parametrize(
    "secret",
    [
        "short",
        "your-secure-secret-key",
        "x" * 31,
        " " * 32,
        "a" * 32,
        "secret" * 6,
        "abcd1234" * 5,
        " " + secrets.token_urlsafe(40),
        "0123456789" + "0" * 30,
    ],
    ids=[
        "short",
        "the seed's example",
        "31 chars",
        "32 spaces",
        "a x 32",
        "secret x 6",
        "abcd1234 x 5",
        "padded",
        "digits then zeros",
    ],
)
def test_weak_jwt_secret_is_refused(secret: str) -> None:
    """A short, well-known, padded, repetitive or low-entropy secret is refused, saying how to
    generate a good one."""
    with pytest.raises(ConfigError, match="too weak") as info:
        load({"PULSAR_JWT_SECRET_KEY": secret})
    assert "secrets.token_urlsafe(48)" in str(info.value)


@pytest.mark.parametrize(
    "secret",
    [secrets.token_urlsafe(48), secrets.token_hex(16), secrets.token_hex(32), SECRET],
    ids=["token_urlsafe(48)", "token_hex(16)", "token_hex(32)", "the suite's secret"],
)
def test_random_jwt_secrets_are_accepted(secret: str) -> None:
    """What the docs tell operators to generate (and 32 random hex digits) passes the check."""
    assert load({"PULSAR_JWT_SECRET_KEY": secret}).jwt_secret_key == secret


@pytest.mark.parametrize("flag", ["1", "true"])
def test_insecure_defaults_flag_allows_weak_secrets(flag: str) -> None:
    """PULSAR_ALLOW_INSECURE_DEFAULTS=1 lets development start without a strong secret."""
    assert load({"PULSAR_ALLOW_INSECURE_DEFAULTS": flag}).allow_insecure_defaults is True
    assert (
        load({"PULSAR_ALLOW_INSECURE_DEFAULTS": flag, "PULSAR_JWT_SECRET_KEY": "dev"}).jwt_secret_key == "dev"
    )


def test_asymmetric_mode_needs_no_secret(tmp_path: Path) -> None:
    """With EdDSA/ES256 the shared secret is not needed, but the public key file is."""
    _priv, pub = _pem_pair(tmp_path, "ec", "k")
    s = load({"PULSAR_JWT_ALGORITHM": "ES256", "PULSAR_JWT_PUBLIC_KEY_FILE": str(pub)})
    assert s.jwt_algorithm == "ES256"


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("bad.yaml", "server: [unclosed\n", "not valid YAML"),
        ("bad.toml", "port = = 1\n", "not valid TOML"),
        ("list.yaml", "- a\n- b\n", "must hold a mapping"),
    ],
)
def test_unreadable_files(tmp_path: Path, name: str, text: str, problem: str) -> None:
    """Broken YAML or TOML, or a file that is not a mapping, is a ConfigError."""
    with pytest.raises(ConfigError, match=problem):
        load(ENV, write(tmp_path / name, text))


def test_missing_and_empty_files(tmp_path: Path) -> None:
    """A named file that does not exist is an error; an empty one means defaults."""
    with pytest.raises(ConfigError, match="cannot read config file"):
        load(ENV, tmp_path / "nope.yaml")
    assert load(ENV, write(tmp_path / "empty.yaml", "")) == Settings(jwt_secret_key=SECRET)


# --- the shipped example and reference


def test_example_config_loads_with_the_defaults() -> None:
    """config.example.yaml loads and states exactly the defaults."""
    assert load(ENV, ROOT / "config.example.yaml") == Settings(jwt_secret_key=SECRET)


def test_example_config_documents_every_setting() -> None:
    """Every Settings field appears in config.example.yaml, and nothing else does."""
    data = yaml.safe_load((ROOT / "config.example.yaml").read_text())
    keys = set(config._flatten(data, "config.example.yaml"))
    assert keys == set(Settings.__struct_fields__)


def test_settings_reference_documents_every_setting() -> None:
    """docs/SETTINGS.md has a row for every setting with its environment variable."""
    text = (ROOT / "docs" / "SETTINGS.md").read_text()
    rows = {line.split("|")[1].strip().strip("`") for line in text.splitlines() if line.startswith("| `")}
    assert rows == set(Settings.__struct_fields__)
    for name in Settings.__struct_fields__:
        assert f"`PULSAR_{name.upper()}`" in text, name


# --- OIDC providers

_PROVIDER = {"name": "kc", "issuer": "https://sso.example.org/realms/x", "client_id": "relay"}


def test_oidc_providers_from_a_yaml_list(tmp_path: Path) -> None:
    """oidc_providers is a list of objects in a file, with defaults for what is left out."""
    f = write(
        tmp_path / "c.yaml",
        "oidc_providers:\n  - name: kc\n    issuer: https://sso.example.org/realms/x\n    client_id: relay\n"
        "    client_secret: s3cret\n    display_name: Example SSO\n    default_permissions: [read, write]\n",
    )
    (p,) = load(ENV, f).oidc_providers
    assert (p.name, p.client_secret, p.label, p.default_permissions) == (
        "kc",
        "s3cret",
        "Example SSO",
        ["read", "write"],
    )
    assert p.scopes == ["openid", "profile", "email"] and p.create_users


def test_oidc_providers_from_the_environment_as_json() -> None:
    """PULSAR_OIDC_PROVIDERS takes the same list as one JSON value."""
    s = load(ENV | {"PULSAR_OIDC_PROVIDERS": json.dumps([_PROVIDER | {"create_users": False}])})
    assert s.oidc_providers[0].name == "kc" and not s.oidc_providers[0].create_users
    assert load(ENV | {"PULSAR_OIDC_PROVIDERS": ""}).oidc_providers == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "Bad Name"}, "PULSAR_OIDC_PROVIDERS[0].name"),
        ({"issuer": "ftp://x"}, "PULSAR_OIDC_PROVIDERS[0] (kc).issuer"),
        ({"issuer": "http://sso.example.org"}, "must use https"),
        ({"client_id": ""}, "PULSAR_OIDC_PROVIDERS[0] (kc).client_id is required"),
        ({"scopes": ["profile"]}, "must include 'openid'"),
        ({"default_permissions": ["root"]}, "'root' - at `PULSAR_OIDC_PROVIDERS[0].default_permissions[0]`"),
        ({"client_id": 5, "client_secret": "hide-me"}, "`int` - at `PULSAR_OIDC_PROVIDERS[0].client_id`"),
        ({"colour": "red"}, "unknown field `colour` - at `PULSAR_OIDC_PROVIDERS[0]`"),
    ],
)
def test_bad_oidc_provider_is_refused_naming_the_field(change: dict[str, object], message: str) -> None:
    """A bad provider stops start-up with a message naming the provider and field, and never
    echoes the client secret."""
    with pytest.raises(ConfigError) as err:
        load(ENV | {"PULSAR_OIDC_PROVIDERS": json.dumps([_PROVIDER | change])})
    assert message in str(err.value), str(err.value)
    assert "hide-me" not in str(err.value)


def test_oidc_provider_names_are_unique_and_json_is_checked() -> None:
    """Two providers of one name, or a value that is not JSON, are refused."""
    with pytest.raises(ConfigError, match="two providers are named 'kc'"):
        load(ENV | {"PULSAR_OIDC_PROVIDERS": json.dumps([_PROVIDER, _PROVIDER])})
    with pytest.raises(ConfigError, match="PULSAR_OIDC_PROVIDERS must be a JSON list"):
        load(ENV | {"PULSAR_OIDC_PROVIDERS": "[{"})


def test_plain_http_issuer_is_allowed_on_loopback() -> None:
    """http issuers are accepted on loopback (tests, development) only."""
    s = load(ENV | {"PULSAR_OIDC_PROVIDERS": json.dumps([_PROVIDER | {"issuer": "http://127.0.0.1:9000"}])})
    assert s.oidc_providers[0].issuer == "http://127.0.0.1:9000"


@pytest.mark.parametrize("name", ["PULSAR_TAIL_BLOCK", "PULSAR_PUBLISH_WAIT_TIMEOUT"])
def test_blocking_waits_must_be_shorter_than_the_command_timeout(name: str) -> None:
    """A blocking read (or WAIT) as long as the Valkey command timeout would time out every time:
    start-up refuses it, naming both settings."""
    with pytest.raises(ConfigError, match=f"{name}.*PULSAR_VALKEY_COMMAND_TIMEOUT"):
        load(ENV | {name: "3", "PULSAR_VALKEY_COMMAND_TIMEOUT": "3", "PULSAR_PUBLISH_WAIT_REPLICAS": "1"})
    assert load(ENV | {name: "2", "PULSAR_VALKEY_COMMAND_TIMEOUT": "3"}).valkey_command_timeout == 3


def test_oidc_providers_from_a_toml_array_of_tables(tmp_path: Path) -> None:
    """In TOML, providers are an array of tables, [[oidc_providers]]."""
    f = write(
        tmp_path / "c.toml",
        f'jwt_secret_key = "{SECRET}"\n[[oidc_providers]]\nname = "a"\nissuer = "https://a.example"\n'
        'client_id = "relay"\n[[oidc_providers]]\nname = "b"\nissuer = "https://b.example"\n'
        'client_id = "relay"\ncreate_users = false\n',
    )
    assert [(p.name, p.create_users) for p in load({}, f).oidc_providers] == [("a", True), ("b", False)]


# --- key files and the Valkey CA file, checked at start-up by every service


def _pem_pair(tmp_path: Path, kind: str, name: str) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    private = (
        ed25519.Ed25519PrivateKey.generate() if kind == "ed25519" else ec.generate_private_key(ec.SECP256R1())
    )
    priv = tmp_path / f"{name}.key"
    pub = tmp_path / f"{name}.pub"
    priv.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    pub.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return priv, pub


def _eddsa(public: Path | str, private: Path | str = "") -> dict[str, str]:
    return {
        "PULSAR_JWT_ALGORITHM": "EdDSA",
        "PULSAR_JWT_PUBLIC_KEY_FILE": str(public),
        "PULSAR_JWT_PRIVATE_KEY_FILE": str(private),
    }


def test_key_files_of_the_right_pair_load(tmp_path: Path) -> None:
    """A matching Ed25519 pair (or the public key alone, as ingest and gateway have) loads."""
    priv, pub = _pem_pair(tmp_path, "ed25519", "a")
    assert load(_eddsa(pub, priv)).jwt_algorithm == "EdDSA"
    assert load(_eddsa(pub)).jwt_public_key_file == str(pub)


def test_key_file_mistakes_stop_start_up_naming_the_setting(tmp_path: Path) -> None:
    """Garbage, the other algorithm's key, the private key as public key, a missing file and a
    pair that does not match each stop start-up with one line naming the setting."""
    priv, pub = _pem_pair(tmp_path, "ed25519", "a")
    ec_priv, ec_pub = _pem_pair(tmp_path, "ec", "b")
    _other_priv, other_pub = _pem_pair(tmp_path, "ed25519", "c")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key\n")
    cases = [
        (_eddsa(garbage), "PULSAR_JWT_PUBLIC_KEY_FILE: " + str(garbage) + " is not a PEM public key"),
        (_eddsa(ec_pub), "holds an EC secp256r1 key; EdDSA needs an Ed25519 key"),
        (_eddsa(priv), "PULSAR_JWT_PUBLIC_KEY_FILE: " + str(priv) + " holds a private key"),
        (_eddsa(tmp_path / "missing.pub"), "PULSAR_JWT_PUBLIC_KEY_FILE: cannot read"),
        (_eddsa(pub, tmp_path / "missing.key"), "PULSAR_JWT_PRIVATE_KEY_FILE: cannot read"),
        (_eddsa(pub, garbage), "PULSAR_JWT_PRIVATE_KEY_FILE: " + str(garbage) + " is not an unencrypted PEM"),
        (_eddsa(pub, ec_priv), "PULSAR_JWT_PRIVATE_KEY_FILE: " + str(ec_priv) + " holds an EC"),
        (_eddsa(other_pub, priv), "do not hold the same key pair"),
        (
            {"PULSAR_JWT_ALGORITHM": "ES256", "PULSAR_JWT_PUBLIC_KEY_FILE": str(pub)},
            "ES256 needs an EC P-256 key",
        ),
    ]
    for env, message in cases:
        with pytest.raises(ConfigError) as err:
            load(env)
        assert message in str(err.value), (env, str(err.value))
        assert "\n" not in str(err.value)


def test_missing_valkey_ca_file_stops_start_up_naming_it(tmp_path: Path) -> None:
    """PULSAR_VALKEY_TLS_CA_FILE naming no file stops start-up with the setting and the path."""
    missing = tmp_path / "ca.pem"
    with pytest.raises(
        ConfigError, match=f"PULSAR_VALKEY_TLS_CA_FILE: cannot read {missing} \\(no such file\\)"
    ):
        load(ENV | {"PULSAR_VALKEY_USE_TLS": "1", "PULSAR_VALKEY_TLS_CA_FILE": str(missing)})


@pytest.mark.parametrize("service", ["gateway", "auth"])
def test_a_service_given_the_private_key_as_public_key_exits_2_in_one_line(
    tmp_path: Path, service: str
) -> None:
    """`pulsar-relay serve` refuses the private key in PULSAR_JWT_PUBLIC_KEY_FILE: rc 2, no traceback."""
    priv, _pub = _pem_pair(tmp_path, "ed25519", "a")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSAR_")}
    env |= _eddsa(priv, priv) | {"PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run(
        [sys.executable, "-m", "pulsar_relay", "serve", service, "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert f"PULSAR_JWT_PUBLIC_KEY_FILE: {priv} holds a private key" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


# --- worker processes


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"PULSAR_WORKERS": "0"}, "must be 1 to 64"),
        ({"PULSAR_WORKERS": "65", "PULSAR_METRICS_PORT": "9100"}, "must be 1 to 64"),
        ({"PULSAR_WORKERS": "2", "PULSAR_STORAGE_BACKEND": "memory", "PULSAR_METRICS_PORT": "91"}, "memory"),
        ({"PULSAR_WORKERS": "2"}, "need PULSAR_METRICS_PORT"),
        ({"PULSAR_WORKERS": "4", "PULSAR_METRICS_PORT": "8078"}, "ports 8078-8081"),
        ({"PULSAR_WORKERS": "2", "PULSAR_METRICS_PORT": "65535"}, "ports 65535-65536"),
    ],
)
def test_impossible_workers_are_refused(env: dict[str, str], problem: str) -> None:
    """More than one worker needs 1..64 of them, Valkey storage and a metrics port per worker that
    is a real port and not the service's."""
    with pytest.raises(ConfigError, match=problem):
        load(ENV | env)


def test_workers_with_metrics_ports() -> None:
    """Workers from the environment or a file, each with a metrics port of its own."""
    s = load(ENV | {"PULSAR_WORKERS": "4", "PULSAR_METRICS_PORT": "9100"})
    assert (s.workers, s.metrics_port) == (4, 9100)
    config.check_workers(s, 9104)  # the service's port just past the metrics ports is fine
    with pytest.raises(ConfigError, match="other than the service's 9103"):
        config.check_workers(s, 9103)  # `serve --port` into the range

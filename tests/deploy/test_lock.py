"""requirements.lock and requirements-min.lock agree with pyproject.toml: every declared dependency is
pinned inside its range, and the minimum lock holds each runtime dependency at its lower bound."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]


def declared(*extras: str) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in extras:
        specs += project["optional-dependencies"][extra]
    return [r for r in map(Requirement, specs) if r.marker is None or r.marker.evaluate()]


def pins(name: str) -> dict[str, Version]:
    found: dict[str, Version] = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            package, _, version = line.partition("==")
            found[canonicalize_name(package)] = Version(version)
    return found


def test_lock_pins_every_declared_dependency_inside_its_range() -> None:
    """A dependency added or re-ranged in pyproject.toml without `make lock` fails here, by name."""
    locked = pins("requirements.lock")
    for req in declared("dev"):
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} is not in requirements.lock: run `make lock`"
        assert req.specifier.contains(locked[name], prereleases=True), (
            f"requirements.lock pins {req.name}=={locked[name]} outside {req}: run `make lock`"
        )


def test_min_lock_holds_each_runtime_dependency_at_its_lower_bound() -> None:
    """What `make test-min` installs is each runtime dependency's declared minimum, not a newer one."""
    locked = pins("requirements-min.lock")
    for req in declared():
        lower = [Version(s.version) for s in req.specifier if s.operator == ">="]
        assert lower, f"{req} declares no lower bound"
        name = canonicalize_name(req.name)
        assert locked.get(name) == lower[0], (
            f"requirements-min.lock pins {req.name}=={locked.get(name)}, not its lower bound {lower[0]}: "
            "run `make lock`"
        )

"""The container tests need a Docker engine and the images `make test-docker` builds; without
them each test is skipped with the reason (run `make test-docker`)."""

from __future__ import annotations

import pytest

from tests.docker import engine


@pytest.fixture(scope="session")
def docker_engine() -> None:
    if not engine.engine_answers():
        pytest.skip("no Docker engine answers: `make test-docker` starts one")


@pytest.fixture(scope="session")
def allinone_image(docker_engine: None) -> str:
    if not engine.image_exists(engine.ALLINONE_IMAGE):
        pytest.skip(f"{engine.ALLINONE_IMAGE} is not built: `make test-docker` builds it")
    return engine.ALLINONE_IMAGE

"""The committed copy of the README's examples (used when ``../shared`` is absent) is the README's."""

from __future__ import annotations

import pytest

from tests.compat import readme


def test_committed_copy_matches_the_seed_readme() -> None:
    """seed_examples.md holds exactly the README's curl and JavaScript blocks: a fallback is faithful."""
    if not readme.SEED_README.is_file():
        pytest.skip(f"{readme.SEED_README} is not beside the repository")
    assert readme.COPY.read_text() == readme.render(readme.example_blocks(readme.SEED_README.read_text()))

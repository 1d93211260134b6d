"""Where the suite writes its sections of docs/BENCHMARKS.md: in place, or beside their neighbour."""

from __future__ import annotations

from pathlib import Path

from bench.docs_sections import replace_section

PAGE = "# Benchmarks\n\n## A\n\na\n\n## B\n\nb\n"


def _titles(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.startswith("## ")]


def test_a_new_section_goes_after_its_neighbour(tmp_path: Path) -> None:
    """A section the page lacks is inserted right after the one named, before the rest."""
    page = tmp_path / "page.md"
    page.write_text(PAGE)
    replace_section("Peers", "p", page, after="A")
    assert _titles(page) == ["## A", "## Peers", "## B"]
    assert "\n## Peers\n\np\n\n## B\n" in page.read_text()


def test_an_existing_section_is_replaced_in_place(tmp_path: Path) -> None:
    """A section already on the page keeps its place whatever ``after`` says; only its body changes."""
    page = tmp_path / "page.md"
    page.write_text(PAGE)
    replace_section("A", "new", page, after="B")
    assert _titles(page) == ["## A", "## B"]
    assert "a\n" not in page.read_text() and "## A\n\nnew\n" in page.read_text()


def test_without_its_neighbour_a_new_section_goes_last(tmp_path: Path) -> None:
    """When the neighbour is missing too, the new section is appended."""
    page = tmp_path / "page.md"
    page.write_text(PAGE)
    replace_section("Peers", "p", page, after="Missing")
    assert _titles(page) == ["## A", "## B", "## Peers"]

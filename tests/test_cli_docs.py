"""The README and docs/ stand on their own: every relative link resolves inside the repository.

Nothing a reader follows may lead outside the clone (the contract and the
instrument notes have their own pages: docs/contract.md, docs/ezo.md).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
OUTSIDE_MENTION = re.compile(r"(?:\.\./shared|/work/shared|shared/CONTRACT\.md|shared/instruments)")


def broken_links(doc: Path, text: str) -> list[str]:
    """Relative links of `doc` that do not name a file or folder inside the repository."""
    out = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a web address or an anchor on the same page
        path = (doc.parent / target.split("#", 1)[0]).resolve()
        if not path.is_relative_to(REPO) or not path.exists():
            out.append(target)
    return out


def test_the_checker_finds_what_it_must() -> None:
    doc = REPO / "docs" / "x.md"
    text = ("[a](protocol.md) [b](../shared/CONTRACT.md) [c](nope.md#x) [d](https://example.org) "
            '[e](#top) [f](../README.md "title") [g](../../outside.md)')
    assert broken_links(doc, text) == ["../shared/CONTRACT.md", "nope.md#x", "../../outside.md"]
    assert OUTSIDE_MENTION.search("see /work/shared/instruments/ezo-uart.md")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves_inside_the_repository(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    assert broken_links(doc, text) == []
    assert OUTSIDE_MENTION.findall(text) == [], "name the page in docs/ instead"


def test_the_contract_and_the_instrument_dialect_have_pages_here() -> None:
    assert "docs/contract.md" in (REPO / "README.md").read_text()
    assert "docs/ezo.md" in (REPO / "README.md").read_text()
    assert "(protocol.md)" in (REPO / "docs" / "contract.md").read_text()

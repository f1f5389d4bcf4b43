"""The page loads nothing from outside the hub: every asset is in the repository, the vendored ones listed
with their source and version."""

from __future__ import annotations

import re
from pathlib import Path

from hub.web.app import STATIC


def test_no_page_file_reaches_outside_the_hub() -> None:
    outside = re.compile(r"(src|href)=\"(https?:)?//|from \"(https?:)?//|url\((https?:)?//|https?://")
    own = [STATIC / "index.html", STATIC / "style.css", *sorted((STATIC / "js").glob("*.js"))]
    for path in own:
        text = path.read_text()
        assert not outside.search(text), path


def test_every_referenced_asset_exists_and_every_vendored_file_is_listed() -> None:
    index = (STATIC / "index.html").read_text()
    for ref in re.findall(r"(?:src|href)=\"/static/([^\"]+)\"", index):
        assert (STATIC / ref).is_file(), ref
    for path in sorted((STATIC / "js").glob("*.js")):
        for ref in re.findall(r"from \"\./([^\"]+)\"", path.read_text()):
            assert (STATIC / "js" / ref).is_file(), f"{path.name} imports {ref}"
    listed = (STATIC / "vendor" / "VENDORED.md").read_text()
    for path in sorted(Path(STATIC / "vendor").iterdir()):
        if path.name != "VENDORED.md":
            assert f"`{path.name}`" in listed and "1.6.32" in listed, path.name

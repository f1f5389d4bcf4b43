"""The manifest: one row per file, kept across reopening; a damaged file is refused, naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.upload.manifest import FileState, Manifest, ManifestUnreadable


def test_rows_survive_reopening_and_the_baseline_is_kept(tmp_path: Path) -> None:
    m = Manifest(tmp_path)
    assert not m.session_known("s1")
    m.add_session("s1", "bench-1", [("old.csv", "/srv/old.csv", 10, 1)])
    at = "2026-12-01T12:00:00.000Z"
    m.put("s1", FileState("a.csv", "/srv/a.csv", 5, 2, "done", "ab" * 16, 7, at, None, 1))
    m.put("s1", FileState("b.csv", "/srv/b.csv", 6, 3, "pending"))
    m.close()
    again = Manifest(tmp_path)
    files = again.files("s1")
    assert again.session_known("s1") and not again.session_known("s2")
    assert files["old.csv"].state == "baseline" and files["old.csv"].sig == (10, 1)
    assert files["a.csv"].generation == 7 and files["a.csv"].uploads == 1
    assert files["b.csv"].state == "pending"
    with pytest.raises(ValueError, match="unknown upload state"):
        again.put("s1", FileState("c.csv", "/c", 1, 1, "lost"))
    again.close()


def test_a_damaged_manifest_is_refused_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "uploads.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.raises(ManifestUnreadable) as caught:
        Manifest(tmp_path)
    assert str(tmp_path / "uploads.sqlite3") in str(caught.value) and "mv " in str(caught.value)

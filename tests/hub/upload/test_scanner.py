"""The scan: only changed files come back, patterns and odd entries, never an exception."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hub.upload.scanner import Root, scan


def tree(root: Path, names: list[str]) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)


def test_unchanged_files_do_not_come_back(tmp_path: Path) -> None:
    tree(tmp_path, ["a.csv", "sub/b.csv", "sub/deeper/c.csv"])
    first = scan([Root(tmp_path)], {})
    assert sorted(s.rel for s in first.changed) == ["a.csv", "sub/b.csv", "sub/deeper/c.csv"]
    known = {s.rel: (s.size, s.mtime_ns) for s in first.changed}
    assert scan([Root(tmp_path)], known).changed == []
    (tmp_path / "sub" / "b.csv").write_text("changed, longer")
    again = scan([Root(tmp_path)], known)
    assert [s.rel for s in again.changed] == ["sub/b.csv"] and again.files == 3


def test_a_checksum_only_folder_returns_every_file(tmp_path: Path) -> None:
    tree(tmp_path, ["a.csv"])
    known = {s.rel: (s.size, s.mtime_ns) for s in scan([Root(tmp_path)], {}).changed}
    assert [s.rel for s in scan([Root(tmp_path, checksum_only=True)], known).changed] == ["a.csv"]


def test_include_ignore_and_pruned_folders(tmp_path: Path) -> None:
    tree(tmp_path, ["a.csv", "a.txt", "~lock.csv", "x.tmp", ".snapshot/old.csv", "raw/r.bin", "raw/keep.csv"])
    root = Root(tmp_path, include=("*.csv", "raw/*.bin"), ignore=("~*", "*.tmp", ".snapshot"))
    assert sorted(s.rel for s in scan([root], {}).changed) == ["a.csv", "raw/keep.csv", "raw/r.bin"]


def test_a_named_root_prefixes_its_paths(tmp_path: Path) -> None:
    tree(tmp_path, ["a.csv"])
    assert [s.rel for s in scan([Root(tmp_path, "spectro")], {}).changed] == ["spectro/a.csv"]


def test_symlinks_inside_are_followed_once_and_outside_reported(tmp_path: Path) -> None:
    root = tmp_path / "out"
    tree(root, ["real/a.csv"])
    (tmp_path / "secret").mkdir()
    (root / "in.csv").symlink_to(root / "real" / "a.csv")
    (root / "again").symlink_to(root / "real")
    (root / "away").symlink_to(tmp_path / "secret")
    (root / "dangling.csv").symlink_to(tmp_path / "nowhere.csv")
    result = scan([Root(root)], {})
    assert sorted(s.rel for s in result.changed) == ["in.csv", "real/a.csv"]
    whys = {p.rel: p.why for p in result.problems}
    assert "outside the watched folder" in whys["away"]
    assert "outside the watched folder" in whys["dangling.csv"]


def test_a_missing_or_unlistable_folder_is_a_problem_not_an_exception(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = scan([Root(tmp_path / "unmounted")], {})
    assert result.changed == [] and "does not exist" in result.problems[0].why
    assert scan([Root(tmp_path / "nothing-recorded", "recorded", recorded=True)], {}).problems == []
    locked = tmp_path / "locked"
    tree(tmp_path, ["locked/a.csv", "fine.csv"])
    real = os.scandir

    def scandir(path: str) -> object:  # as a share refusing one folder would (root reads any mode-0 folder)
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", path)
        return real(path)

    monkeypatch.setattr("hub.upload.scanner.os.scandir", scandir)
    result = scan([Root(tmp_path)], {})
    assert [s.rel for s in result.changed] == ["fine.csv"]
    assert [(p.rel, p.why) for p in result.problems] == [("locked",
                                                          "folder cannot be listed (Permission denied)")]


def test_a_top_folder_named_recorded_would_mix_with_the_recorders_files(tmp_path: Path) -> None:
    tree(tmp_path, ["recorded/a.csv", "b.csv"])
    result = scan([Root(tmp_path)], {})
    assert [s.rel for s in result.changed] == ["b.csv"]
    assert "give this watch entry a name" in result.problems[0].why
    assert sorted(s.rel for s in scan([Root(tmp_path, "spectro")], {}).changed) == ["spectro/b.csv",
                                                                                  "spectro/recorded/a.csv"]

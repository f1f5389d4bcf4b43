"""hub.yaml's storage/upload/watch keys: each bad value named with file:line and field; key file modes."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.config import load_hub_config
from hub.upload.settings import StorageConfig, UploadConfig
from hub.upload.transfer import CredentialsRefused, make_client
from lecis.errors import ConfigError

HEAD = "hub: hub-1\nbroker: {}\ndata_dir: d\n"


def problems(tmp: Path, text: str) -> list[str]:
    path = tmp / "hub.yaml"
    path.write_text(HEAD + text)
    with pytest.raises(ConfigError) as caught:
        load_hub_config(path)
    return [str(p).removeprefix(f"{path}:") for p in caught.value.problems]


def test_good_keys_are_read_with_paths_from_the_files_folder(tmp_path: Path) -> None:
    key = tmp_path / "gcs.json"
    key.write_text("{}")
    key.chmod(0o600)
    (tmp_path / "hub.yaml").write_text(
        HEAD + f"storage: {{bucket: labedge-data, prefix: lab1/x, credentials: {key.name}}}\n"
        "upload: {scan_s: 10, stable_s: 5, final_timeout_s: 90}\n"
        "watch:\n  bench-1:\n    - {path: out, include: ['*.csv'], ignore: ['~*'], checksum_only: true}\n")
    config = load_hub_config(tmp_path / "hub.yaml")
    assert config.storage == StorageConfig("labedge-data", "lab1/x", key)
    assert config.upload.final_timeout_s == 90 and config.upload.scan_s == 10
    (entry,) = config.watch["bench-1"]
    assert entry.path == tmp_path / "out" and entry.include == ("*.csv",) and entry.checksum_only


def test_every_bad_value_is_a_problem_with_its_line(tmp_path: Path) -> None:
    found = problems(tmp_path, "storage: {bucket: Bad_Bucket!, prefix: /lead, credntials: x}\n"
                               "upload: {scan_s: 0, stable_s: -1, chunk_kib: 300, workers: 99}\n"
                               "watch:\n  Bench_1: [{path: a}]\n  bench-2:\n    - {path: a}\n"
                               "    - {path: b}\n"
                               "  bench-3: [{include: 5}]\n  bench-4: {path: c, include: []}\n")
    assert any(p.startswith("4: storage.bucket: expected a bucket name") for p in found)
    assert any(p.startswith("4: storage.prefix: expected an object prefix") for p in found)
    assert any(p.startswith("4: storage.credntials: unknown key 'credntials'; did you mean 'credentials'?")
               for p in found)
    assert any(p.startswith("5: upload.scan_s: expected a number from 0.1 to 86400") for p in found)
    assert any(p.startswith("5: upload.stable_s:") for p in found)
    assert any(p.startswith("5: upload.chunk_kib: expected a multiple of 256") for p in found)
    assert any(p.startswith("5: upload.workers:") for p in found)
    assert any(p.startswith("7: watch.Bench_1: expected a unit id") for p in found)
    assert any(p.startswith("8: watch.bench-2: bench-2 watches 2 folders: give each a distinct name")
               for p in found)
    assert any(p.startswith("11: watch.bench-3[0].path: missing") for p in found)
    assert any(p.startswith("11: watch.bench-3[0].include: expected a list of file name patterns")
               for p in found)
    assert ("12: watch.bench-4.include: an empty include list would upload nothing; leave it out to take "
            "every file") in found


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "gcs.json"
    key.write_text("{}")
    key.chmod(0o644)
    found = problems(tmp_path, f"storage: {{bucket: labedge-data, credentials: {key}}}\n")
    assert found == [f"4: storage.credentials: credentials file {key} is readable by others (mode 0644); "
                     f"a service-account key must be private: chmod 600 {key}"]
    with pytest.raises(CredentialsRefused, match="chmod 600"):
        make_client(StorageConfig("labedge-data", "", key), {})
    key.chmod(0o600)
    with pytest.raises(CredentialsRefused, match="not a service-account key"):
        make_client(StorageConfig("labedge-data", "", key), {})


def test_without_storage_there_is_no_bucket(tmp_path: Path) -> None:
    (tmp_path / "hub.yaml").write_text(HEAD)
    config = load_hub_config(tmp_path / "hub.yaml")
    assert config.storage is None and config.upload == UploadConfig() and config.watch == {}

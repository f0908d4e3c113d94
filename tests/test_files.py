"""The shared file helpers: atomic writes keep the old content on failure, hashes and version stamps."""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path

import pytest

from tomarena.files import atomic_path, sha256_files, versions, write_json_atomic, write_text_atomic


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    write_json_atomic(target, {"b": 1, "a": [1, 2]})
    assert json.loads(target.read_text()) == {"a": [1, 2], "b": 1}
    assert target.read_text().splitlines()[1] == '  "a": ['  # sorted keys, indented
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_failed_atomic_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "notes.txt"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_sha256_files_equals_hashlib_over_the_concatenation(tmp_path: Path) -> None:
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"abc")
    b.write_bytes(b"\x00" * 3_000_000)  # more than one read block
    assert sha256_files([a, b]) == hashlib.sha256(b"abc" + b"\x00" * 3_000_000).hexdigest()
    assert sha256_files([a], with_names=True) == hashlib.sha256(b"a.binabc").hexdigest()


def test_versions_reads_installed_metadata() -> None:
    v = versions(("numpy", "no-such-package-xyz"))
    assert v["python"] == platform.python_version()
    assert "numpy" in v and "no-such-package-xyz" not in v

"""File helpers every layer shares: atomic writes, content hashes, version stamps and the cache folder (standard
library only).

An atomic write goes to a hidden temporary file beside the target and is renamed over it, so a reader (or a
resumed run) never sees half a file, and a failed write leaves neither the temporary file nor a changed target.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import uuid
from collections.abc import Callable, Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

#: packages whose versions a run's or an adapter's manifest records
TRACKED_PACKAGES = ("tomarena", "numpy", "pettingzoo", "torch", "transformers", "peft", "ray", "pyarrow")


def cache_root() -> Path:
    """Where tomarena caches what it derives once (converted models, the Axelrod strategy table): $TOMARENA_CACHE,
    else $XDG_CACHE_HOME/tomarena, else ~/.cache/tomarena."""
    env = os.environ.get("TOMARENA_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tomarena"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block ends without error it is renamed to `path`, and on any
    error it is removed (the target keeps its previous content)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike[str], write: Callable[[Path], Any]) -> Path:
    """Call `write(tmp)` to produce the file at a temporary path, then rename it to `path`; returns `path`."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 text to `path` atomically."""
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> Path:
    """Write `data` as indented, key-sorted JSON to `path` atomically (values JSON cannot hold become strings)."""
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str))


def sha256_files(files: Iterable[str | os.PathLike[str]], with_names: bool = False) -> str:
    """Hex sha256 over the bytes of `files` in the given order (each file's name first when `with_names`)."""
    h = hashlib.sha256()
    for f in files:
        if with_names:
            h.update(Path(f).name.encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def versions(packages: Iterable[str] = TRACKED_PACKAGES) -> dict[str, str]:
    """Python's version and that of each installed package of `packages` (missing ones are left out), read from
    the installed metadata without importing them."""
    out = {"python": platform.python_version()}
    for name in packages:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out

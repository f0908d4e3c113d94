"""What a policy is, for seeds: its label with every file it names replaced by that file's content hash.

A match's seed derives from the identities of its players, not from their labels, so a model or adapter copied to
another folder plays exactly as before (same seeds, same standings), while one whose weights differ plays with other
seeds. Labels, which may keep the paths, stay what reports and traces show. A label that names no hashed file is its
own identity, so every seed of a file-free run is what it always was.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from tomarena.agents.base import Policy
from tomarena.agents.resolve import split_spec
from tomarena.errors import ConfigError


def canonical_path(path: str) -> str:
    """A path's one spelling (user expanded, absolute, links resolved), so ~/a, ./a and /home/u/a compare equal."""
    return os.path.realpath(os.path.expanduser(path))


def seed_identity(label: str, policy: Policy) -> str:
    """`label` with each path that `policy.file_hashes()` hashed (the name after `prefix:` or an option value)
    replaced by its hash; the label unchanged when it names none, or when it is not a spec (a user's own label)."""
    hashes = {canonical_path(p): h for p, h in policy.file_hashes().items()}
    if not hashes:
        return label
    try:
        name, options = split_spec(label)
    except ConfigError:
        return label

    def swap(value: str) -> str:
        return hashes.get(canonical_path(value), value) if value else value

    prefix, sep, rest = name.partition(":")
    name = f"{prefix}:{swap(rest)}" if sep and rest else name
    query = "&".join(f"{k}={swap(v)}" for k, v in options.items())
    return f"{name}?{query}" if query else name


def seed_identities(policies: Mapping[str, Policy]) -> dict[str, str]:
    """The seed identity of every labelled policy of a run (see `seed_identity`)."""
    return {label: seed_identity(label, pol) for label, pol in policies.items()}

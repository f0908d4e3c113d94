"""One generic registry for games, framings and policies; ids are strings like `classic/tit_for_tat`."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from tomarena.errors import RegistryError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> entry map that refuses duplicates and suggests close matches for unknown ids."""

    def __init__(self, kind: str, loader: Callable[[], None] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._loader = loader
        self._loaded = loader is None

    def register(self, entry_id: str, entry: T, *, replace: bool = False) -> T:
        """Add `entry` under `entry_id`; a second registration of the same id raises unless `replace`."""
        if not entry_id or not isinstance(entry_id, str):
            raise RegistryError(f"{self.kind} id must be a non-empty string, got {entry_id!r}")
        if entry_id in self._entries and not replace:
            raise RegistryError(f"{self.kind} id {entry_id!r} is already registered")
        self._entries[entry_id] = entry
        return entry

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self._loaded = True
            assert self._loader is not None
            self._loader()

    def get(self, entry_id: str) -> T:
        """Return the entry for `entry_id`, or raise a RegistryError listing close matches."""
        self._ensure_loaded()
        try:
            return self._entries[entry_id]
        except KeyError as exc:
            raise RegistryError(self.unknown_message(entry_id)) from exc

    def unknown_message(self, entry_id: str) -> str:
        """The one-line message for an unknown id: close matches first, else the known ids."""
        self._ensure_loaded()
        close = difflib.get_close_matches(str(entry_id), list(self._entries), n=3, cutoff=0.5)
        if close:
            return f"unknown {self.kind} {entry_id!r}; did you mean {', '.join(close)}?"
        known = sorted(self._entries)
        shown = ", ".join(known[:25]) + (" ..." if len(known) > 25 else "")
        return f"unknown {self.kind} {entry_id!r}; known: {shown}"

    def __contains__(self, entry_id: object) -> bool:
        self._ensure_loaded()
        return entry_id in self._entries

    def set_loader(self, loader: Callable[[], None]) -> None:
        """Fill the registry lazily: `loader` runs once, on the first look-up (built-ins, plugins, data files)."""
        self._loader, self._loaded = loader, False

    def reset(self) -> None:
        """Forget every entry; the loader (if any) runs again on the next look-up."""
        self._entries.clear()
        self._loaded = self._loader is None

    def unregister(self, entry_id: str) -> T | None:
        """Remove `entry_id` and return its entry (None when it was not registered); the loader is not run."""
        return self._entries.pop(entry_id, None)

    def peek(self, entry_id: str) -> T | None:
        """The entry of `entry_id`, or None, without running the loader or raising."""
        return self._entries.get(entry_id)

    def registered(self, entry_id: str) -> bool:
        """Whether `entry_id` is registered already, without triggering the loader (for use inside loaders)."""
        return entry_id in self._entries

    def ids(self) -> list[str]:
        """All registered ids, sorted."""
        self._ensure_loaded()
        return sorted(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids())

    def __len__(self) -> int:
        self._ensure_loaded()
        return len(self._entries)

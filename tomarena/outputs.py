"""Output paths of the commands that write (tournament, sweep, traces export, finetune, report, pipeline).

`guard_outputs` wraps such a command: before it runs, the parent directory of each output is created, so a path
that cannot be created (`--out /proc/forbidden/x`, a path under a file) is one ConfigError naming it; while it
runs, an OSError on an output becomes one ConfigError too; and when it fails, whatever it created is removed
unless it holds work that can be resumed, and the message says which (kept, with how to resume, or removed).
Nothing that existed before the command is removed.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tomarena.errors import ConfigError, TomarenaError


def _first_missing(path: Path) -> Path | None:
    """The topmost ancestor-or-self of `path` that does not exist (what creating `path` would create)."""
    if path.exists():
        return None
    missing = path
    for parent in path.parents:
        if parent.exists():
            break
        missing = parent
    return missing


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


@dataclass
class OutputGuard:
    """What a command is about to write, and what of it did not exist before (so is the command's to remove)."""

    paths: tuple[Path, ...]
    resumable: Callable[[], bool] = lambda: False
    resume_hint: str = "re-run to resume"
    created: list[Path] = field(default_factory=list)  # did not exist: removed whole on failure
    emptied: list[Path] = field(default_factory=list)  # existed as empty directories: their contents are removed

    def __post_init__(self) -> None:
        self.paths = tuple(Path(p) for p in self.paths)
        for p in self.paths:
            top = _first_missing(p)
            if top is not None and top not in self.created:
                self.created.append(top)
            elif top is None and p.is_dir() and not any(p.iterdir()):
                self.emptied.append(p)

    def prepare(self) -> None:
        """Create the parent directory of every output; one ConfigError naming the path if that fails."""
        for p in self.paths:
            try:
                p.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"cannot create output {p}: {_reason(exc)}") from exc

    def owns(self, filename: str | bytes | None) -> Path | None:
        """The output that an OSError's file belongs to (the output, inside it, above it, or a temp file of it beside
        it), if any."""
        if not filename:
            return None
        f = Path(filename.decode() if isinstance(filename, bytes) else filename).absolute()
        for p in self.paths:
            p = p.absolute()
            if _inside(f, p) or _inside(p, f) or (f.parent == p.parent and p.name in f.name):
                return p
        return None

    def cleanup(self) -> str:
        """After a failure: keep resumable work, else remove what this command created; says which ('' if none)."""
        touched = [p for p in self.created if p.exists()] + [p for p in self.emptied if p.is_dir() and any(
            p.iterdir())]
        if not touched:
            return ""
        where = ", ".join(str(p) for p in touched)
        if self.resumable():
            return f"; kept {where}, which holds completed work: {self.resume_hint}"
        for p in touched:
            if p in self.emptied:
                for child in p.iterdir():
                    shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
            elif p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        return f"; removed {where}, which this run had created"


def _reason(exc: OSError) -> str:
    detail = exc.strerror or str(exc)
    files = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f)
    return f"{detail} ({files})" if files else detail


@contextmanager
def guard_outputs(paths: Sequence[str | Path], resumable: Callable[[], bool] = lambda: False,
                  resume_hint: str = "re-run to resume") -> Iterator[OutputGuard]:
    """Run the body as a command writing `paths`: unwritable outputs are one ConfigError, and a failure removes
    what the body created unless `resumable()` says it holds resumable work (the error message says which)."""
    guard = OutputGuard(tuple(Path(p) for p in paths), resumable, resume_hint)
    try:
        guard.prepare()
        yield guard
    except KeyboardInterrupt:  # an interrupted run is resumed, never cleaned away
        raise
    except TomarenaError as exc:
        note = guard.cleanup()
        if note:
            exc.args = (f"{exc}{note}", *exc.args[1:])
        raise
    except OSError as exc:
        note = guard.cleanup()
        out = guard.owns(exc.filename2) or guard.owns(exc.filename)  # a rename's target, else its source
        if out is None:
            if note:
                exc.add_note(note.lstrip("; "))
            raise
        raise ConfigError(f"cannot write output {out}: {_reason(exc)}{note}") from exc
    except BaseException as exc:
        note = guard.cleanup()
        if note:
            exc.add_note(note.lstrip("; "))
        raise

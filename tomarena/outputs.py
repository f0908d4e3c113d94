"""Output paths of the commands that write (tournament, sweep, traces export, finetune, report, pipeline), and the
lock that gives a run directory to one process at a time.

`guard_outputs` wraps such a command: before it runs, the parent directory of each output is created, so a path
that cannot be created (`--out /proc/forbidden/x`, a path under a file) is one ConfigError naming it; each run
directory among the outputs is claimed (`claim_run_dir`), so a second run on it refuses in one line before it
touches anything; while the command runs, an OSError on an output becomes one ConfigError too; and when it fails,
what it created is removed unless it holds work that can be resumed, and the message says which (kept, with how to
resume, or removed). Only what this process created alone is removed: a directory its own `mkdir` made (a run
directory only while it holds its lock), never a tree holding another run's lock file, nor anything that existed
before the command.

The lock is an exclusive `flock` on RUN/.tomarena.lock, held for the run's whole life: the OS drops it when the
process dies, so a lock file left by a killed run blocks nobody, and a clean release removes the file.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tomarena.errors import ConfigError, TomarenaError

try:
    import fcntl
except ImportError:  # Windows: no flock, so run directories are not locked there
    fcntl = None  # type: ignore[assignment]

#: the lock file inside a run directory (hidden; removed when its holder lets go)
LOCK_NAME = ".tomarena.lock"


# -- the run-directory lock --------------------------------------------------------------------------------------
@dataclass
class _Held:
    fd: int
    path: Path
    thread: int
    created: bool
    was_empty: bool
    count: int = 1


_REGISTRY = threading.Lock()
#: run directories this process holds, by real path; the holding thread may claim one again (claims nest)
_HELD: dict[str, _Held] = {}


@dataclass
class RunClaim:
    """A hold on a run directory: `created` when this process made the directory itself (so may remove it while it
    holds the lock), `was_empty` when it held nothing when locked; release() (or garbage collection) lets go."""

    root: Path
    created: bool
    was_empty: bool
    key: str
    released: bool = False

    def release(self) -> None:
        """Drop this claim; the last claim of the directory unlocks it and removes the lock file."""
        if not self.released:
            self.released = True
            _release(self.key)

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:  # a finaliser never raises (interpreter shutdown)
            pass


def claim_run_dir(root: str | os.PathLike[str]) -> RunClaim:
    """Lock the run directory `root` for this thread, creating it (and its parents) when missing; when another run
    holds it, in this process or another, a one-line ConfigError, and nothing is changed."""
    root = Path(root)
    key = os.path.realpath(root)
    with _REGISTRY:
        held = _HELD.get(key)
        if held is not None:
            if held.thread != threading.get_ident():
                raise ConfigError(_busy(root, f" (pid {os.getpid()}, this process)"))
            held.count += 1
            return RunClaim(root, held.created, held.was_empty, key)
    created = _make_dir(root)
    fd = _lock(root)
    was_empty = not any(p.name != LOCK_NAME for p in root.iterdir())
    with _REGISTRY:
        _HELD[key] = _Held(fd, root / LOCK_NAME, threading.get_ident(), created, was_empty)
    return RunClaim(root, created, was_empty, key)


def _busy(root: Path, holder: str) -> str:
    return (f"run directory {root} is in use by another tomarena run{holder}; wait for it to finish or choose "
            "another --out")


def _make_dir(root: Path) -> bool:
    """Create `root` (True) or find it there already (False); its parents are created as needed."""
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create output {root}: {_reason(exc)}") from exc
    try:
        os.mkdir(root)
        return True
    except FileExistsError:
        if not root.is_dir():
            raise ConfigError(f"--out {root} exists and is not a directory; choose another --out") from None
        return False
    except OSError as exc:
        raise ConfigError(f"cannot create output {root}: {_reason(exc)}") from exc


def _lock(root: Path) -> int:
    """An open descriptor of root/LOCK_NAME holding its exclusive flock, with this process's pid written in it."""
    path = root / LOCK_NAME
    for _ in range(100):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as exc:
            raise ConfigError(f"cannot lock run directory {root}: {_reason(exc)}") from exc
        if fcntl is None:
            return fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _holder(fd)
            os.close(fd)
            raise ConfigError(_busy(root, holder)) from exc
        if _names(path, fd):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        os.close(fd)  # its last holder removed the file between our open and flock: lock the one there now
    raise ConfigError(f"cannot lock run directory {root}: its lock file keeps changing")


def _names(path: Path, fd: int) -> bool:
    """Whether `path` still names the open file `fd`."""
    try:
        a, b = os.stat(path), os.fstat(fd)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


def _release(key: str) -> None:
    with _REGISTRY:
        held = _HELD.get(key)
        if held is None:
            return
        held.count -= 1
        if held.count > 0:
            return
        del _HELD[key]
    try:
        if _names(held.path, held.fd):
            held.path.unlink()  # while still locked, so nobody locks a file about to go
    except OSError:
        pass
    os.close(held.fd)


def _others_in(tree: Path, emptied: bool = False) -> bool:
    """Whether `tree` holds a run directory this thread did not create and does not hold (a live run of another
    process, or one that existed before): such a tree is never removed. A run directory that `tree` itself is, held
    and found empty (`emptied`), is this command's to empty."""
    if not tree.is_dir() or tree.is_symlink():
        return False
    for lock in tree.rglob(LOCK_NAME):
        held = _HELD.get(os.path.realpath(lock.parent))
        ours = held is not None and held.thread == threading.get_ident() and (
            held.created or (emptied and lock.parent == tree))
        if not ours:
            return True
    return False


# -- guarding a command's outputs --------------------------------------------------------------------------------
def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


@dataclass
class OutputGuard:
    """What a command is about to write, and what of it this process creates alone (so may remove on failure)."""

    paths: tuple[Path, ...]
    resumable: Callable[[], bool] = lambda: False
    resume_hint: str = "re-run to resume"
    run_dirs: tuple[Path, ...] = ()  # outputs that are run directories: claimed before the command runs
    created: list[Path] = field(default_factory=list)  # made by this command: removed whole on failure
    emptied: list[Path] = field(default_factory=list)  # existed as empty directories: their contents are removed
    claims: list[RunClaim] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.paths = tuple(Path(p) for p in self.paths)
        self.run_dirs = tuple(Path(p) for p in self.run_dirs)
        for p in self.paths:
            if p in self.run_dirs:
                continue  # decided when claimed, under the lock
            if not p.exists():
                self.created.append(p)
            elif p.is_dir() and not any(p.iterdir()):
                self.emptied.append(p)

    def prepare(self) -> None:
        """Create the parent directory of every output (one ConfigError naming the path if that fails), then claim
        every run directory among them."""
        for p in dict.fromkeys((*self.paths, *self.run_dirs)):
            self._make_parents(p)
        for root in self.run_dirs:
            claim = claim_run_dir(root)
            self.claims.append(claim)
            if claim.created:
                self.created.append(root)
            elif claim.was_empty:
                self.emptied.append(root)

    def _make_parents(self, output: Path) -> None:
        """mkdir -p the parent of `output`, noting each directory this call made itself (this command's to remove);
        one that someone else made meanwhile is not."""
        for d in [d for d in output.parents if not d.exists()][::-1]:
            try:
                os.mkdir(d)
            except FileExistsError:
                continue
            except OSError as exc:
                raise ConfigError(f"cannot create output {output}: {_reason(exc)}") from exc
            self.created.append(d)
        if not output.parent.is_dir():
            raise ConfigError(f"cannot create output {output}: {output.parent} is not a directory")

    def release(self) -> None:
        """Let go of the run directories claimed."""
        for claim in self.claims:
            claim.release()
        self.claims.clear()

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

    def touched(self) -> list[Path]:
        """What this command made and may remove, topmost first; never a tree holding another run's lock file."""
        made = [p for p in self.created if (p.exists() or p.is_symlink()) and not _others_in(p)]
        made += [p for p in self.emptied if p.is_dir() and any(c.name != LOCK_NAME for c in p.iterdir())
                 and not _others_in(p, emptied=True)]
        made = list(dict.fromkeys(made))
        return [p for p in made if not any(q != p and _inside(p, q) for q in made)]

    def cleanup(self) -> str:
        """After a failure: keep resumable work, else remove what this command created; says which ('' if none)."""
        touched = self.touched()
        if not touched:
            return ""
        where = ", ".join(str(p) for p in touched)
        if self.resumable():
            return f"; kept {where}, which holds completed work: {self.resume_hint}"
        for p in touched:
            if p in self.emptied:
                for child in p.iterdir():
                    if child.name != LOCK_NAME:
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
                  resume_hint: str = "re-run to resume", run_dirs: Sequence[str | Path] = ()) -> Iterator[OutputGuard]:
    """Run the body as a command writing `paths`, of which `run_dirs` are run directories this process holds until
    the body and its clean-up end: unwritable outputs are one ConfigError, a run directory held by another run is
    one too, and a failure removes what the body created unless `resumable()` says it holds resumable work (the
    error message says which)."""
    guard = OutputGuard(tuple(Path(p) for p in paths), resumable, resume_hint, tuple(Path(p) for p in run_dirs))
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
    finally:
        guard.release()

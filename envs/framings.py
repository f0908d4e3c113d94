"""Framings: the social context a game is told in. Each framing is one YAML file; adding one is adding a file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tomarena.errors import ConfigError, RegistryError
from tomarena.options import read_yaml, validate
from tomarena.registry import Registry

FRAMINGS: Registry[Framing] = Registry("framing")  # type: ignore[name-defined]
BUILTIN_DIR = Path(__file__).parent / "framings"
ATTRIBUTES = ("warmth", "closeness", "shared_fate", "public_scrutiny", "competition")


class _Attributes(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    warmth: float = Field(ge=0, le=1, description="affection toward the co-player")
    closeness: float = Field(ge=0, le=1, description="how well the players know each other / will meet again")
    shared_fate: float = Field(ge=0, le=1, description="how much each player's outcome depends on the joint one")
    public_scrutiny: float = Field(ge=0, le=1, description="how visible the choice is to others")
    competition: float = Field(ge=0, le=1, description="how rivalrous the relationship is")


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    C: str = Field(min_length=1, description="what choosing C means in this context")
    D: str = Field(min_length=1, description="what choosing D means in this context")


class _FramingFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="registry id (lower case, digits, underscores)")
    title: str = Field(min_length=1, description="short human-readable name")
    sample: Literal["in", "out", "none"] = Field(description="in-sample, out-of-sample, or none (the bare game)")
    role: str = Field(min_length=1, description="who the player is")
    co_player: str = Field(min_length=1, description="who the other player is")
    relationship: str = Field(default="", description="one sentence on how the players stand to each other")
    options: _Options = Field(description="the meaning of each action")
    goal: str = Field(min_length=1, description="what the player tries to achieve")
    attributes: _Attributes = Field(description="the declared relationship attributes, each in [0, 1]")


@dataclass(frozen=True)
class Framing:
    """A social context: who the player is, the relationship, what C and D mean, the goal, and attributes."""

    id: str
    title: str
    sample: str  # "in" (in-sample), "out" (out-of-sample) or "none" (the bare game)
    role: str
    co_player: str
    option_c: str
    option_d: str
    goal: str
    warmth: float
    closeness: float
    shared_fate: float
    public_scrutiny: float
    competition: float
    relationship: str = ""  # one sentence, e.g. "Relations between the two nations are neutral."; "" = not stated

    @property
    def attributes(self) -> dict[str, float]:
        """The declared relationship attributes, each in [0, 1]."""
        return {a: getattr(self, a) for a in ATTRIBUTES}


def load_framing(path: str | os.PathLike[str]) -> Framing:
    """Read and validate one framing file; any problem raises a one-line ConfigError naming file and field."""
    p = Path(path)
    f = validate(_FramingFile, read_yaml(p, "framing file"), "framing", f"framing file {p}")
    return Framing(
        id=f.id, title=f.title, sample=f.sample, role=" ".join(f.role.split()), co_player=f.co_player,
        option_c=f.options.C, option_d=f.options.D, goal=" ".join(f.goal.split()), **f.attributes.model_dump(),
        relationship=" ".join(f.relationship.split()),
    )


def _framing_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ConfigError(f"framing directory {path} does not exist")
    return sorted([*path.glob("*.yaml"), *path.glob("*.yml")])


def _register_path(path: Path, replace: bool) -> list[str]:
    """Load every file first, then register all or nothing, so one bad file never leaves half a directory."""
    loaded = [(file, load_framing(file)) for file in _framing_files(path)]
    seen: dict[str, Path] = {}
    for file, fr in loaded:
        if fr.id in seen:
            raise RegistryError(f"framing id {fr.id!r} is declared twice: in {seen[fr.id]} and {file}")
        seen[fr.id] = file
        if FRAMINGS.registered(fr.id) and not replace:
            raise RegistryError(f"framing id {fr.id!r} is already registered (framing file {file})")
    for _, fr in loaded:
        FRAMINGS.register(fr.id, fr, replace=replace)
    return [fr.id for _, fr in loaded]


def register_framing_dir(directory: str | os.PathLike[str], *, replace: bool = False) -> list[str]:
    """Register every `*.yaml`/`*.yml` framing in `directory` (or one framing file); returns the ids added."""
    FRAMINGS.ids()  # load the built-in framings first so a clash is reported here, not later
    return _register_path(Path(directory), replace)


def _load_builtin() -> None:
    try:
        _register_path(BUILTIN_DIR, replace=False)
        for d in filter(None, os.environ.get("TOMARENA_FRAMINGS", "").split(os.pathsep)):
            try:
                _register_path(Path(d), replace=True)
            except ConfigError as exc:
                raise ConfigError(f"{exc} (from TOMARENA_FRAMINGS)") from exc
    except Exception:
        FRAMINGS.reset()  # fail the same way on every use, never half-loaded
        raise


FRAMINGS.set_loader(_load_builtin)  # framings load on first use


def get_framing(framing: str | Framing) -> Framing:
    """Resolve a framing id (or pass a Framing through)."""
    return framing if isinstance(framing, Framing) else FRAMINGS.get(framing)


def framings_by_sample(sample: str) -> list[str]:
    """Ids of the framings tagged `in`, `out` or `none`."""
    return [i for i in FRAMINGS.ids() if FRAMINGS.get(i).sample == sample]

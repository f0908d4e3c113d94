"""Framings: the social context a game is told in. Each framing is one YAML file; adding one is adding a file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tomarena.errors import ConfigError
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
    C: str = Field(min_length=1)
    D: str = Field(min_length=1)


class _FramingFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str = Field(min_length=1)
    sample: Literal["in", "out", "none"]
    role: str = Field(min_length=1)
    co_player: str = Field(min_length=1)
    options: _Options
    goal: str = Field(min_length=1)
    attributes: _Attributes


@dataclass(frozen=True)
class Framing:
    """A social context: who the player is, what C and D mean there, the goal, and relationship attributes."""

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

    @property
    def attributes(self) -> dict[str, float]:
        """The declared relationship attributes, each in [0, 1]."""
        return {a: getattr(self, a) for a in ATTRIBUTES}


def _one_line(err: ValidationError) -> str:
    e = err.errors()[0]
    where = ".".join(str(p) for p in e["loc"]) or "file"
    return f"{where}: {e['msg']}"


def load_framing(path: str | os.PathLike[str]) -> Framing:
    """Read and validate one framing file; any problem raises a one-line ConfigError naming file and field."""
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read framing file {p}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"framing file {p} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"framing file {p} must hold a mapping of fields, got {type(raw).__name__}")
    try:
        f = _FramingFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"framing file {p}: {_one_line(exc)}") from None
    return Framing(
        id=f.id, title=f.title, sample=f.sample, role=" ".join(f.role.split()), co_player=f.co_player,
        option_c=f.options.C, option_d=f.options.D, goal=" ".join(f.goal.split()), **f.attributes.model_dump(),
    )


def register_framing_dir(directory: str | os.PathLike[str], *, replace: bool = False) -> list[str]:
    """Register every `*.yaml` framing in `directory`; returns the ids added."""
    d = Path(directory)
    if not d.is_dir():
        raise ConfigError(f"framing directory {d} does not exist")
    added = []
    for path in sorted(d.glob("*.yaml")):
        fr = load_framing(path)
        FRAMINGS.register(fr.id, fr, replace=replace)
        added.append(fr.id)
    return added


def _load_builtin() -> None:
    register_framing_dir(BUILTIN_DIR)
    extra = os.environ.get("TOMARENA_FRAMINGS")
    if extra:
        for d in extra.split(os.pathsep):
            register_framing_dir(d, replace=True)


FRAMINGS._loader = _load_builtin  # framings load on first use
FRAMINGS._loaded = False


def get_framing(framing: str | Framing) -> Framing:
    """Resolve a framing id (or pass a Framing through)."""
    return framing if isinstance(framing, Framing) else FRAMINGS.get(framing)


def framings_by_sample(sample: str) -> list[str]:
    """Ids of the framings tagged `in`, `out` or `none`."""
    return [i for i in FRAMINGS.ids() if FRAMINGS.get(i).sample == sample]

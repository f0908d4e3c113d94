"""Validated run configuration for tournaments and sweeps (YAML file and/or flags; flags override)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tomarena.arena.episode import MatchSpec
from tomarena.errors import ConfigError


class RunConfig(BaseModel):
    """Everything that defines a run; unknown keys and out-of-range values are rejected with one line."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["tournament", "sweep"] = "tournament"
    policies: list[str] = Field(min_length=1)
    games: list[str] = Field(default_factory=lambda: ["prisoners_dilemma"], min_length=1)
    framings: list[str] = Field(default_factory=lambda: ["none"], min_length=1)
    rounds: int = Field(default=10, ge=1, le=100_000)
    continuation: float | None = Field(default=None, ge=0, lt=1)
    max_rounds: int = Field(default=1000, ge=1)
    repetitions: int = Field(default=1, ge=1)
    samples: int | None = Field(default=None, ge=1, description="sweeps: sampled answers per scenario")
    seed: int = 0
    self_play: bool = True
    noise: float = Field(default=0.0, ge=0, le=1)
    executor: Literal["local", "ray"] = "local"
    ray_address: str | None = None
    workers: int | None = Field(default=None, ge=1)
    chunk_size: int = Field(default=64, ge=1)
    roles: dict[str, str] = Field(default_factory=dict)

    @field_validator("games", "framings", "policies", mode="before")
    @classmethod
    def _split_commas(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [v]
        if isinstance(v, list):
            return [x.strip() for item in v for x in (item.split(",") if isinstance(item, str) else [item])
                    if not isinstance(x, str) or x.strip()]
        return v

    def resolved(self) -> RunConfig:
        """Check game and framing ids against the registries (unknown ids name close matches)."""
        from tomarena.envs.framings import get_framing
        from tomarena.envs.games import get_game

        for g in self.games:
            get_game(g)
        for f in self.framings:
            get_framing(f)
        return self


def load_config(path: str | Path | None, overrides: dict[str, Any]) -> RunConfig:
    """Read a YAML config (optional) and apply flag overrides (None values are ignored)."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {p} does not exist") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {p} is not valid YAML: {str(exc).splitlines()[0]}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {p} must be a mapping of settings, got {type(loaded).__name__}")
        data.update(loaded or {})
    data.update({k: v for k, v in overrides.items() if v is not None})
    return validate_config(data)


def validate_config(data: dict[str, Any]) -> RunConfig:
    """A RunConfig from a dict, with pydantic's first complaint as one line."""
    try:
        return RunConfig.model_validate(data).resolved()
    except ValidationError as exc:
        e = exc.errors()[0]
        where = ".".join(str(x) for x in e["loc"]) or "config"
        if e["type"] == "extra_forbidden":
            allowed = ", ".join(RunConfig.model_fields)
            raise ConfigError(f"unknown config key {where!r}; allowed: {allowed}") from None
        raise ConfigError(f"config value {where}={e.get('input')!r}: {e['msg']}") from None


def build_specs(cfg: RunConfig, n_players: dict[str, int]) -> list[MatchSpec]:
    """Every match of the run: a round-robin per game x framing x repetition, or the sweep's scenario grid."""
    specs = []
    labels = list(dict.fromkeys(cfg.policies))
    for game, framing in itertools.product(cfg.games, cfg.framings):
        if cfg.kind == "sweep":
            for pol, rep in itertools.product(labels, range(cfg.samples or 1)):
                specs.append(MatchSpec((pol,), game, framing, rep, 1, kind="sweep"))
            continue
        pairs = itertools.combinations_with_replacement(labels, 2) if cfg.self_play else itertools.combinations(
            labels, 2)
        for a, b in pairs:
            seats = (a,) + (b,) * (n_players[game] - 1)
            for rep in range(cfg.repetitions):
                specs.append(MatchSpec(seats, game, framing, rep, None if cfg.continuation is not None else cfg.rounds,
                                       cfg.continuation, cfg.max_rounds, cfg.noise))
    return specs

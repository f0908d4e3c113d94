"""Validated run configuration for tournaments and sweeps (YAML file and/or flags; flags override)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tomarena.arena.episode import MatchSpec
from tomarena.errors import ConfigError, RegistryError


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
    replicas: int | None = Field(default=None, ge=1, le=1024,
                                 description="ray: replicas of each heavy policy's model service (None: one actor)")
    concurrency: int | None = Field(default=None, ge=1, le=100_000,
                                    description="ray: chunks in flight at once (None: workers); chunks sized by it")
    max_batch: int = Field(default=64, ge=1, le=1_000_000, description="model service: most decisions per batch")
    batch_wait_ms: float = Field(default=2.0, ge=0, le=60_000,
                                 description="model service: longest wait for more requests to fill a batch")
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

    @field_validator("games", mode="after")
    @classmethod
    def _expand_game_sets(cls, v: list[str]) -> list[str]:
        return expand_scenario_sets(v, "games")

    @field_validator("framings", mode="after")
    @classmethod
    def _expand_framing_sets(cls, v: list[str]) -> list[str]:
        return expand_scenario_sets(v, "framings")

    def resolved(self) -> RunConfig:
        """Check game and framing ids against the registries (unknown ids name close matches)."""
        from tomarena.envs.framings import get_framing
        from tomarena.envs.games import get_game

        sets = f"; or a scenario set: {', '.join(SCENARIO_SET_NAMES)}"
        for ids, get in ((self.games, get_game), (self.framings, get_framing)):
            for x in ids:
                try:
                    get(x)
                except RegistryError as exc:
                    raise RegistryError(f"{exc.args[0] if exc.args else exc}{sets}") from exc
        return self


#: named scenario sets, usable wherever a list of games or framings is: on the games axis a name stands for the
#: set's games, on the framings axis for its framings (the run's grid is the product of the two lists)
SCENARIO_SET_NAMES = ("in_sample", "oos_framings", "oos_games", "all")


def scenario_set(name: str) -> tuple[list[str], list[str]]:
    """(games, framings) of a named scenario set, from the registries' tags: in_sample = the study games x
    in-sample framings; oos_framings = study games x out-of-sample framings; oos_games = the doubled games x
    in-sample framings; all = the union of the three."""
    from tomarena.envs.framings import framings_by_sample
    from tomarena.envs.games import GAMES

    if name not in SCENARIO_SET_NAMES:
        raise ConfigError(f"unknown scenario set {name!r}; allowed: {', '.join(SCENARIO_SET_NAMES)}")
    tagged = {t: [g for g in GAMES.ids() if t in GAMES.get(g).tags] for t in ("in_sample", "doubled")}
    ins, outs = framings_by_sample("in"), framings_by_sample("out")
    sets = {"in_sample": (tagged["in_sample"], ins), "oos_framings": (tagged["in_sample"], outs),
            "oos_games": (tagged["doubled"], ins)}
    sets["all"] = (tagged["in_sample"] + tagged["doubled"], ins + outs)
    return sets[name]


def expand_scenario_sets(values: list[str], axis: Literal["games", "framings"]) -> list[str]:
    """Replace named scenario sets in a list of game (or framing) ids by their members; ids pass through, order
    is kept and duplicates dropped."""
    out: list[str] = []
    for v in values:
        out += scenario_set(v)[0 if axis == "games" else 1] if v in SCENARIO_SET_NAMES else [v]
    return list(dict.fromkeys(out))


def load_config(path: str | Path | None, overrides: dict[str, Any]) -> RunConfig:
    """Read a YAML config (optional) and apply flag overrides (None values are ignored)."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {p} does not exist") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {p} is not valid YAML: {str(exc).splitlines()[0]}") from exc
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
            raise ConfigError(f"unknown config key {where!r}; allowed: {allowed}") from exc
        raise ConfigError(f"config value {where}={e.get('input')!r}: {e['msg']}") from exc


#: version of the tournament schedule `build_specs` makes; stored in the manifest so that a run scheduled otherwise
#: (before every composition was played in rotated seat orders) is never resumed into a mixed design
SCHEDULE = "compositions-rotated/1"


def compositions(labels: list[str], n_seats: int, self_play: bool = True) -> list[tuple[str, ...]]:
    """Every group of `n_seats` players drawn from `labels` with repetition (a multiset), seats in sorted label
    order so the list does not depend on the order the labels were given; without self-play, groups of one
    policy only are left out."""
    groups = itertools.combinations_with_replacement(sorted(set(labels)), n_seats)
    return [g for g in groups if self_play or len(set(g)) > 1]


def seat_orders(group: tuple[str, ...], rotate: bool) -> list[tuple[str, ...]]:
    """The seat assignments a group plays: its canonical order only, or (`rotate`) every distinct cyclic rotation
    of it, so that each policy of the group sits in every seat equally often (for two seats: both orders)."""
    if not rotate:
        return [group]
    return list(dict.fromkeys(group[i:] + group[:i] for i in range(len(group))))


def _rotate(game: str, n_seats: int) -> bool:
    """Whether a game's groups are rotated through the seats: all but symmetric two-player games, where each
    player sees only its own and the other's history, so seats are exchangeable."""
    from tomarena.envs.games import Game, get_game

    g = get_game(game)
    return not (n_seats == 2 and isinstance(g, Game) and g.is_symmetric)


def build_specs(cfg: RunConfig, n_players: dict[str, int]) -> list[MatchSpec]:
    """Every match of the run: per game x framing, every composition of its seats (`compositions`) in each of
    its seat orders (`seat_orders`) x repetition, or the sweep's scenario grid. The list, and each match's key
    and hence seed, are the same for any order of `cfg.policies`."""
    specs = []
    labels = list(dict.fromkeys(cfg.policies))
    for game, framing in itertools.product(cfg.games, cfg.framings):
        if cfg.kind == "sweep":
            for pol, rep in itertools.product(labels, range(cfg.samples or 1)):
                specs.append(MatchSpec((pol,), game, framing, rep, 1, kind="sweep"))
            continue
        rotate = _rotate(game, n_players[game])
        for group in compositions(labels, n_players[game], cfg.self_play):
            for seats, rep in itertools.product(seat_orders(group, rotate), range(cfg.repetitions)):
                specs.append(MatchSpec(seats, game, framing, rep, None if cfg.continuation is not None else cfg.rounds,
                                       cfg.continuation, cfg.max_rounds, cfg.noise))
    return specs

"""Validated run configuration for tournaments and sweeps (YAML file and/or flags; flags override). The models
are the one source of every setting: `tomarena tournament`/`sweep` flags, YAML keys, defaults and help text all
come from their fields (tomarena.options)."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tomarena.arena.episode import MatchSpec
from tomarena.envs.framings import get_framing
from tomarena.envs.games import Game, get_game
from tomarena.envs.scenarios import SET_HELP, SET_NAMES, expand_sets
from tomarena.errors import ConfigError, RegistryError
from tomarena.options import CommaList, merged, validate

SETS_HELP = "named scenario sets expand on either axis: " + "; ".join(f"{n} ({h})" for n, h in SET_HELP.items())


class ExecutionSettings(BaseModel):
    """Where and how matches run; results never depend on these (a run may be resumed with other values). The field
    ranges are the one declaration of the executors' limits: RayExecutor checks its knobs against this model."""

    model_config = ConfigDict(extra="forbid")
    executor: Literal["local", "ray"] = Field(default="local", description="where matches run")
    ray_address: str | None = Field(default=None,
                                    description="join this Ray cluster instead of starting a local session")
    workers: int | None = Field(default=None, ge=1, description="ray: chunks in flight at once (default: the "
                                "cluster's CPUs)")
    chunk_size: int = Field(default=64, ge=1, description="most matches per batch and per stored shard")
    save_every: float = Field(default=20.0, gt=0, le=86_400,
                              description="seconds between stored shards a run aims at: chunks are cut smaller when "
                              "matches are slow (an LLM's), so an interrupted run loses little (at least one match "
                              "per shard); not for a model whose decisions depend on their batch (a local hf: "
                              "model), whose chunks keep --chunk-size so results never depend on timing")
    replicas: int | None = Field(default=None, ge=1, le=1024,
                                 description="ray: replicas of each heavy policy's model service (default: one "
                                 "actor per heavy policy, no service)")
    concurrency: int | None = Field(default=None, ge=1, le=100_000,
                                    description="ray: chunks in flight at once, chunks sized by it (default: "
                                    "workers)")
    max_batch: int = Field(default=64, ge=1, le=1_000_000, description="model service: most decisions per batch")
    batch_wait_ms: float = Field(default=2.0, ge=0, le=60_000,
                                 description="model service: longest wait for more requests to fill a batch")
    replica_cpus: float = Field(default=0, ge=0, le=1024,
                                description="model service: CPUs reserved per replica (0: a token 0.01, so that "
                                "replicas still spread over the nodes)")
    replica_gpus: float = Field(default=0, ge=0, le=64, description="model service: GPUs per replica")
    sweep_path: Literal["ray_data", "service"] = Field(
        default="ray_data", description="ray with replicas: one-shot sweeps through Ray Data workers that each hold "
        "a replica, or through the model service")


#: the kinds of run: repeated matches or a one-shot scenario grid (`tomarena tournament`, `tomarena sweep`)
KINDS = ("tournament", "sweep")

#: fields of RunConfig that only tournaments (repeated matches) or only sweeps (one-shot scenarios) read
TOURNAMENT_ONLY = ("rounds", "continuation", "max_rounds", "repetitions", "noise", "self_play")
SWEEP_ONLY = ("samples",)


class RunConfig(ExecutionSettings):
    """Everything that defines a run; unknown keys and out-of-range values are rejected with one line."""

    kind: Literal["tournament", "sweep"] = Field(default="tournament", description="repeated matches or a "
                                                 "one-shot scenario grid")
    policies: CommaList = Field(min_length=1, description="policy ids or inline specs (classic/tit_for_tat, "
                                "strategist/reference, llm/smollm2-135m-instruct, hf:PATH?adapter=DIR, "
                                "openai:URL?model=NAME, axelrod:Grudger); comma list or repeatable, each policy "
                                "once; a comma inside a spec's options stays in the value when what follows is not "
                                "a new spec (classic/memory_one?p=1,0,1,0,classic/tit_for_tat is two policies), and "
                                "quotes or brackets keep commas too ('a?p=1,0',b or a?p=[1,0],b); required here or "
                                "in --config")
    games: CommaList = Field(default_factory=lambda: ["prisoners_dilemma"], min_length=1,
                             description="game ids (see `tomarena list games`) or scenario sets; comma list or "
                             f"repeatable; {SETS_HELP}")
    framings: CommaList = Field(default_factory=lambda: ["none"], min_length=1,
                                description="framing ids (see `tomarena list framings`) or scenario sets (as for "
                                "games); comma list or repeatable")
    rounds: int = Field(default=10, ge=1, le=100_000, description="rounds per match (fixed horizon)")
    continuation: float | None = Field(default=None, ge=0, lt=1,
                                       description="probability of another round after each one, in [0,1): "
                                       "uncertain horizon (default: none, fixed horizon)")
    max_rounds: int = Field(default=1000, ge=1, description="cap on rounds with continuation")
    repetitions: int = Field(default=1, ge=1, description="repetitions of every match")
    samples: int | None = Field(default=None, ge=1, description="sweeps: sampled answers per scenario (default: "
                                "none = exact scoring, one decision per scenario)")
    seed: int = Field(default=0, description="run seed; every match's seed derives from it")
    self_play: bool = Field(default=True, description="include groups of one policy only (each policy against "
                            "itself)")
    noise: float = Field(default=0.0, ge=0, le=1, description="probability that an action is flipped "
                         "(trembling hand)")
    roles: dict[str, str] = Field(default_factory=dict, description="teacher/base/student: the policy label of "
                                  "each role, recorded in the manifest for the report")

    @field_validator("policies", mode="after")
    @classmethod
    def _each_policy_once(cls, v: list[str]) -> list[str]:
        seen: set[str] = set()
        for label in v:
            if label in seen:
                raise ValueError(f"policy {label!r} is given twice; list each policy once")
            seen.add(label)
        return v

    @field_validator("games", mode="after")
    @classmethod
    def _expand_game_sets(cls, v: list[str]) -> list[str]:
        return expand_sets(v, "games")

    @field_validator("framings", mode="after")
    @classmethod
    def _expand_framing_sets(cls, v: list[str]) -> list[str]:
        return expand_sets(v, "framings")

    def resolved(self) -> RunConfig:
        """Check game and framing ids against the registries (unknown ids name close matches)."""
        sets = f"; or a scenario set: {', '.join(SET_NAMES)}"
        for ids, get in ((self.games, get_game), (self.framings, get_framing)):
            for x in ids:
                try:
                    get(x)
                except RegistryError as exc:
                    raise RegistryError(f"{exc.args[0] if exc.args else exc}{sets}") from exc
        return self


def load_config(path: str | Path | None, overrides: dict[str, Any]) -> RunConfig:
    """Read a YAML config (optional) and apply flag overrides (None values are ignored); a file whose `kind:`
    is not the command's (`overrides["kind"]`) is refused rather than run as the other kind."""
    data = merged(path, None)
    kind = overrides.get("kind")
    if kind is not None and data.get("kind", kind) != kind:
        said = data["kind"]
        hint = f"run it with `tomarena {said} --config {path}`" if said in KINDS else f"allowed: {', '.join(KINDS)}"
        raise ConfigError(f"config file {path} has kind: {said}, but this command runs a {kind}; {hint}, or "
                          "remove `kind:` from the file")
    data.update({k: v for k, v in overrides.items() if v is not None})
    if "policies" not in data:
        raise ConfigError("no policies given; pass --policies or set `policies:` in --config")
    return validate_config(data, f"config file {path}" if path is not None else None, overrides)


def validate_config(data: dict[str, Any], source: str | None = None,
                    flags: dict[str, Any] | None = None) -> RunConfig:
    """A RunConfig from a dict (`flags`: the part given as flags), checked against the registries; problems are
    one line (tomarena.options)."""
    return validate(RunConfig, data, "config", source, flags).resolved()


#: version of the tournament schedule `build_specs` makes; stored in the manifest so that a run scheduled otherwise
#: (before every composition was played in rotated seat orders) is never resumed into a mixed design
SCHEDULE = "compositions-rotated/1"


def compositions(labels: list[str], n_seats: int, self_play: bool = True,
                 identities: Mapping[str, str] | None = None) -> list[tuple[str, ...]]:
    """Every group of `n_seats` players drawn from `labels` with repetition (a multiset), seats in sorted order of
    the labels' `identities` (default: the labels), so the list depends neither on the order the labels were given
    nor on where the policies' files lie; without self-play, groups of one policy only are left out."""
    ids = identities or {}
    ranked = sorted(set(labels), key=lambda label: (ids.get(label, label), label))
    groups = itertools.combinations_with_replacement(ranked, n_seats)
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
    g = get_game(game)
    return not (n_seats == 2 and isinstance(g, Game) and g.is_symmetric)


def spec_families(cfg: RunConfig, n_players: dict[str, int],
                  identities: Mapping[str, str] | None = None) -> list[tuple[MatchSpec, int]]:
    """The run's matches as (first repetition, number of repetitions) per game x framing x seating, in
    `build_specs` order: a handful of entries however many repetitions there are, so a run of any size is planned,
    counted and streamed without holding one spec per match."""
    labels = list(dict.fromkeys(cfg.policies))
    ids = identities or {}
    families = []

    def seated(seats: tuple[str, ...]) -> tuple[str, ...] | None:
        return tuple(ids.get(p, p) for p in seats) if ids else None

    for game, framing in itertools.product(cfg.games, cfg.framings):
        if cfg.kind == "sweep":
            families += [(MatchSpec((pol,), game, framing, 0, 1, kind="sweep", identities=seated((pol,))),
                          cfg.samples or 1) for pol in labels]
            continue
        rotate = _rotate(game, n_players[game])
        for group in compositions(labels, n_players[game], cfg.self_play, ids):
            families += [(MatchSpec(seats, game, framing, 0, None if cfg.continuation is not None else cfg.rounds,
                                    cfg.continuation, cfg.max_rounds, cfg.noise, identities=seated(seats)),
                          cfg.repetitions) for seats in seat_orders(group, rotate)]
    return families


def iter_specs(families: Iterable[tuple[MatchSpec, int]]) -> Iterator[MatchSpec]:
    """Every match of `spec_families`, one at a time, repetitions of a family in order."""
    for first, n in families:
        for rep in range(n):
            yield dataclasses.replace(first, repetition=rep)


def build_specs(cfg: RunConfig, n_players: dict[str, int],
                identities: Mapping[str, str] | None = None) -> list[MatchSpec]:
    """Every match of the run: per game x framing, every composition of its seats (`compositions`) in each of
    its seat orders (`seat_orders`) x repetition, or the sweep's scenario grid. The list, and each match's key
    and hence seed, are the same for any order of `cfg.policies`; seeds derive from the labels' `identities`
    (arena.identity; default: the labels)."""
    return list(iter_specs(spec_families(cfg, n_players, identities)))

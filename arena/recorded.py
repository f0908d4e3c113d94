"""Recorded play as an ordinary run directory: five LLMs' 3,600 matches of the 144 Robinson-Goforth games (Akata et
al.; tomarena.envs.rg144) written through the trace store, one row per decision (72,000), so that the report,
standings, cross-play, fingerprints and `traces export` read them as they read a tournament tomarena played.

Each match is one episode, `akata/<model>,akata/<model> | rg144/<n> | none#0`, seat player_0 being the authors'
player 1; rounds count from 0 and `action` 0 is option 1 (label A). The letter the model answered is the row's
`completion`; `prompt` holds the round's question as one chat message in tomarena's words, naming the match's two
letters in the order that round's question named them (the authors' prompt text is not shipped); `protocol` is
"akata", `source` "replay", `parse_status` "ok"; `probs` is null, since only the choice was recorded.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import time
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tomarena.agents.llm.prompts import messages_json
from tomarena.arena.config import ExecutionSettings, validate_config
from tomarena.arena.episode import MatchSpec, derive_seed
from tomarena.arena.rows import columns_table
from tomarena.arena.store import RunStore
from tomarena.envs.rg144 import (
    CITATION,
    DATA,
    GAMES_FILE,
    LABELS,
    MODELS,
    N_ROUNDS,
    ROUNDS_FILE,
    SOURCE,
    RecordedMatch,
    recordings,
)
from tomarena.errors import ConfigError
from tomarena.files import write_json_atomic

if TYPE_CHECKING:
    from tomarena.arena.runner import RunSink

POLICY_PREFIX = "akata/"
PROTOCOL = "akata"
FRAMING = "none"
#: the manifest's schedule: the recorded matches (every ordered pair of models in every game), not tomarena's
SCHEDULE = "akata-recorded/1"


def policy_label(model: str) -> str:
    """The run's label of a recorded model: `akata/<short name>` (e.g. akata/gpt-4)."""
    return f"{POLICY_PREFIX}{model}"


def match_spec(match: RecordedMatch) -> MatchSpec:
    """The MatchSpec a recorded match is stored under (its episode id, match key and seed derive from it)."""
    return MatchSpec(tuple(policy_label(m) for m in match.models), match.game_id, FRAMING, 0, N_ROUNDS)


@functools.cache
def question(letters: tuple[str, str], order: tuple[int, int], rnd: int) -> str:
    """The `prompt` of round `rnd` (from 0): one user message naming the two letters in the order asked."""
    first, second = (letters[i] for i in order)
    return messages_json([{"role": "user", "content": f"Round {rnd + 1} of {N_ROUNDS}. Option {first} or "
                                                      f"Option {second}?"}])


def match_columns(matches: Collection[RecordedMatch], run_id: str) -> dict[str, list[Any]]:
    """Trace columns (tomarena.schema) of every decision of `matches`: per match, round by round, seat by seat."""
    per_match = 2 * N_ROUNDS
    cols: dict[str, list[Any]] = {k: [] for k in ("episode_id", "match_key", "seed", "game", "policy", "opponents",
                                                  "action", "completion", "prompt", "reward", "cumulative_reward")}
    for m in matches:
        spec = match_spec(m)
        for key, value in (("episode_id", spec.episode_id), ("match_key", spec.match_key), ("game", spec.game),
                           ("seed", derive_seed(0, spec.match_key, 0))):
            cols[key] += [value] * per_match
        cols["policy"] += list(spec.policies) * N_ROUNDS
        cols["opponents"] += list(spec.policies[::-1]) * N_ROUNDS
        cols["action"] += [a for joint in m.actions for a in joint]
        cols["completion"] += [x for pair in m.answers for x in pair]
        cols["prompt"] += [question(m.letters, m.orders[r], r) for r in range(N_ROUNDS) for _ in (0, 1)]
        cols["reward"] += [p for pair in m.points for p in pair]
        running = [list(itertools.accumulate(p[seat] for p in m.points)) for seat in (0, 1)]
        cols["cumulative_reward"] += [running[seat][r] for r in range(N_ROUNDS) for seat in (0, 1)]
    n = len(matches) * per_match
    constant = {"run_id": run_id, "kind": "tournament", "repetition": 0, "framing": FRAMING, "horizon": N_ROUNDS,
                "source": "replay", "protocol": PROTOCOL, "parse_status": "ok"}
    return {**cols, **{k: [v] * n for k, v in constant.items()},
            "round": [r for r in range(N_ROUNDS) for _ in (0, 1)] * len(matches),
            "agent": ["player_0", "player_1"] * (n // 2), "intended_action": cols["action"],
            "action_label": [LABELS[a] for a in cols["action"]]}


def manifest(run_id: str, matches: Collection[RecordedMatch]) -> dict[str, Any]:
    """The run's manifest: a tournament config of the recorded models and games (10 rounds, framing none), the
    models, and the data's source, citation and file hashes."""
    labels = [policy_label(m) for m in MODELS.values()]
    games = sorted({m.game for m in matches})
    cfg = validate_config({"kind": "tournament", "policies": labels, "games": [f"rg144/{n}" for n in games],
                           "framings": [FRAMING], "rounds": N_ROUNDS})
    files = {name: hashlib.sha256((DATA / name).read_bytes()).hexdigest() for name in (GAMES_FILE, ROUNDS_FILE)}
    return {"run_id": run_id, "kind": "tournament", "seed": 0, "policies": labels, "roles": {},
            "config": cfg.model_dump(mode="json", exclude=set(ExecutionSettings.model_fields)),
            "models": {policy_label(m): {"id": policy_label(m), "kind": "recorded", "recorded_as": raw,
                                        "source": SOURCE} for raw, m in MODELS.items()},
            "schedule": SCHEDULE, "data": {"source": SOURCE, "citation": CITATION, "sha256": files}}


def import_recordings(out: str | Path, sink: RunSink | None = None,
                      games: Collection[int] | None = None) -> Path:
    """Write the recorded matches (of `games` only, when given) into a new run directory `out`: one shard,
    the manifest, what `sink` makes of the rows (the top floor passes the summary tables), then summary.json."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out {out} exists and is not an empty directory; choose another --out")
    started = time.perf_counter()
    matches = [m for m in recordings() if games is None or m.game in games]
    if not matches:
        raise ConfigError(f"no recorded matches in games {sorted(games or ())}; the games are 1..144")
    store = RunStore(out)
    store.open(manifest(out.name, matches), resume=False)
    cols = match_columns(matches, out.name)
    table = columns_table(len(cols["round"]), cols)
    store.write_shard(table)
    if sink is not None:
        sink.add(table.select(list(sink.columns)))
        sink.finish(out)
    write_json_atomic(out / "summary.json", {
        "episodes": len(matches), "rows": table.num_rows, "parse_failures": 0, "fallbacks": 0, "parse_defaults": 0,
        "backend_errors": 0, "backend_stats": {}, "seconds_this_session": round(time.perf_counter() - started, 3)})
    return out

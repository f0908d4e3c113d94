"""The one row spec of traces, used by both engines: the general episode loop (`decision_row`, one dict per
decision) and the vectorised classic path (`coded` + `columns_table`, whole Arrow columns at once).

Column names, types and order come from tomarena.schema. Action labels and the cooperative action come from the
game, never from a default, so a game with labels X/Y records X/Y on either path, and `p_cooperate` is null where
the game has no cooperative action (donation games: giving is an amount). Repeated strings (policy, game,
framing, match key, labels, ...) are dictionary arrays built from integer codes: no Python string per row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from tomarena.schema import COLUMN_NAMES, arrow_schema

if TYPE_CHECKING:
    from tomarena.agents.base import Decision
    from tomarena.arena.episode import MatchSpec
    from tomarena.envs.games import GameLike


def game_labels(game: GameLike) -> tuple[str, ...]:
    """The action labels a game records in `action_label` (its own, e.g. X/Y for `matrix?...&labels=X/Y`)."""
    return tuple(game.action_labels)


def p_cooperate(game: GameLike, probs: Sequence[float] | None) -> float | None:
    """The probability of the game's cooperative action; None when unknown or the game has none (donation)."""
    coop = game.cooperative_action
    return float(probs[coop]) if probs and coop is not None else None


def decision_row(spec: MatchSpec, run_id: str, seed: int, horizon: int | None, rnd: int, player: int, d: Decision,
                 executed: int, game: GameLike, reward: float | None,
                 cumulative: float | None) -> dict[str, Any]:
    """One trace row (schema columns) for one decision of the general engine in `game`."""
    probs = list(d.probs) if d.probs is not None else None
    labels = game_labels(game)
    return {
        "run_id": run_id, "kind": spec.kind, "episode_id": spec.episode_id, "match_key": spec.match_key,
        "repetition": spec.repetition, "seed": seed, "game": spec.game, "framing": spec.framing,
        "horizon": horizon, "round": rnd, "agent": f"player_{player}", "policy": spec.policies[player],
        "opponents": ",".join(p for i, p in enumerate(spec.policies) if i != player),
        "intended_action": int(d.action), "action": int(executed), "action_label": labels[executed],
        "probs": probs, "p_cooperate": p_cooperate(game, probs), "source": d.source,
        "protocol": d.protocol, "prompt": d.prompt, "completion": d.completion, "parse_status": d.parse_status,
        "prompt_tokens": d.prompt_tokens, "completion_tokens": d.completion_tokens, "other_mass": d.other_mass,
        "error": d.error, "reward": reward, "cumulative_reward": cumulative,
    }


def rows_table(rows: Iterable[Mapping[str, Any]]) -> Any:
    """Row dicts (from `decision_row`) as one pyarrow Table of the trace schema."""
    import pyarrow as pa

    return pa.Table.from_pylist(list(rows), schema=arrow_schema())


def coded(values: Sequence[str], codes: np.ndarray) -> Any:
    """A dictionary column: row i holds values[codes[i]] (int32 codes, one gather-free Arrow array)."""
    import pyarrow as pa

    return pa.DictionaryArray.from_arrays(pa.array(np.asarray(codes, dtype=np.int32)),
                                          pa.array(list(values), type=pa.string()))


def pair_list(first: np.ndarray, second: np.ndarray) -> Any:
    """A list<double> column of two entries per row, [first[i], second[i]] (the probs of a 2-action game)."""
    import pyarrow as pa

    offsets = pa.array(np.arange(0, 2 * len(first) + 1, 2, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(np.stack([first, second], axis=1).reshape(-1)))


def columns_table(n_rows: int, columns: Mapping[str, Any]) -> Any:
    """A Table of the trace schema from whole columns: Arrow arrays as given, numpy arrays converted to the
    column's type, absent columns all null. Unknown column names are an error (the schema is the spec)."""
    import pyarrow as pa

    unknown = set(columns) - set(COLUMN_NAMES)
    if unknown:
        raise ValueError(f"not trace columns: {sorted(unknown)}; the schema has {list(COLUMN_NAMES)}")
    schema = arrow_schema()
    arrays = []
    for field in schema:
        col = columns.get(field.name)
        if col is None:
            arrays.append(pa.nulls(n_rows, field.type))
        elif isinstance(col, pa.Array):
            arrays.append(col)
        else:
            arrays.append(pa.array(col, type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)

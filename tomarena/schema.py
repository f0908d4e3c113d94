"""The one trace schema: one row per (episode, round, agent), written by the arena and read by training and analysis.

Kept at the package root (not in arena) so that training and analysis read traces without importing
the arena, envs or any heavy library. pyarrow is imported lazily.
"""

from __future__ import annotations

from typing import Any

DICT = "dictionary<string>"

#: (column, arrow type name, nullable, meaning). "dictionary<string>": a string column of few distinct values, stored
#: dictionary-encoded (int32 codes into the distinct strings); it reads back as a pandas categorical.
COLUMNS: tuple[tuple[str, str, bool, str], ...] = (
    ("run_id", DICT, False, "id of the run directory that wrote the row"),
    ("kind", DICT, False, "'tournament' (repeated matches) or 'sweep' (one-shot scenario grid)"),
    ("episode_id", DICT, False, "match_key + '#' + repetition; unique within a run"),
    ("match_key", DICT, False, "policies | game | framing of the match"),
    ("repetition", "int64", False, "repetition index of the match"),
    ("seed", "int64", False, "seed derived from (run seed, match key, repetition)"),
    ("game", DICT, False, "game id"),
    ("framing", DICT, False, "framing id"),
    ("horizon", "int64", True, "number of rounds, null when the end is uncertain"),
    ("round", "int64", False, "round index from 0"),
    ("agent", DICT, False, "player_0, player_1, ..."),
    ("policy", DICT, False, "label of the policy that played (its spec)"),
    ("opponents", DICT, False, "labels of the co-players, comma separated ('' in sweeps)"),
    ("intended_action", "int64", False, "action the policy chose"),
    ("action", "int64", False, "action executed (differs from intended only under noise)"),
    ("action_label", DICT, False, "label of the executed action (C, D, or the contribution)"),
    ("probs", "list<double>", True, "probability of each action when the policy knows it"),
    ("p_cooperate", "double", True, "probability of action 0 (C) when known"),
    ("source", DICT, False, "rule | strategist | llm | fallback | replay (recorded study data) | replay-model"),
    ("protocol", DICT, True, "prompt protocol (letter | motivation | repeated...) for LLM-style policies"),
    ("prompt", "string", True, "the chat messages shown to the policy, as JSON"),
    ("completion", "string", True, "the text the policy wrote (answer and motivation)"),
    ("parse_status", DICT, True, "ok | scored | default (study parser: no D, counted C) | failed | fallback"),
    ("prompt_tokens", "int64", True, "prompt length in tokens"),
    ("completion_tokens", "int64", True, "completion length in tokens"),
    ("other_mass", "double", True, "probability mass on neither label (scoring mode)"),
    ("error", "string", True, "backend failure text after retries, if any"),
    ("reward", "double", True, "payoff of this round (null in sweeps without a co-player)"),
    ("cumulative_reward", "double", True, "payoff so far including this round"),
)

COLUMN_NAMES: tuple[str, ...] = tuple(c[0] for c in COLUMNS)


DICTIONARY_COLUMNS: tuple[str, ...] = tuple(c[0] for c in COLUMNS if c[1] == DICT)


def arrow_schema(decoded: bool = False) -> Any:
    """The pyarrow schema of trace shards; `decoded`: dictionary columns as plain strings (for sorting, joins)."""
    import pyarrow as pa

    types = {"string": pa.string(), "int64": pa.int64(), "double": pa.float64(), "list<double>": pa.list_(pa.float64()),
             DICT: pa.string() if decoded else pa.dictionary(pa.int32(), pa.string())}
    return pa.schema([pa.field(n, types[t], nullable=nl) for n, t, nl, _ in COLUMNS])


def missing_columns(names: list[str]) -> list[str]:
    """Schema columns absent from `names` (used to reject trace files of the wrong shape)."""
    return [c for c in COLUMN_NAMES if c not in names]

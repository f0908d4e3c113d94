"""The one trace schema: one row per (episode, round, agent), written by the arena and read by training and analysis.

Kept at the package root (not in arena) so that training and analysis read traces without importing
the arena, envs or any heavy library. pyarrow is imported lazily.
"""

from __future__ import annotations

from typing import Any

DICT = "dictionary<string>"

#: the columns, one per line: name, arrow type ("dict": a string column of few distinct values, stored
#: dictionary-encoded as int32 codes into the distinct strings; it reads back as a pandas categorical), "null" when
#: the column may be null ("-" when not), and what it means (an indented line continues the meaning above it)
_TABLE = """
run_id             dict         -     id of the run directory that wrote the row
kind               dict         -     'tournament' (repeated matches) or 'sweep' (one-shot scenario grid)
episode_id         dict         -     match_key + '#' + repetition; unique within a run
match_key          dict         -     policies | game | framing of the match
repetition         int64        -     repetition index of the match
seed               int64        -     seed derived from (run seed, match key, repetition)
game               dict         -     game id
framing            dict         -     framing id
horizon            int64        null  number of rounds, null when the end is uncertain
round              int64        -     round index from 0
agent              dict         -     player_0, player_1, ...
policy             dict         -     label of the policy that played (its spec)
opponents          dict         -     labels of the co-players, comma separated ('' in sweeps)
intended_action    int64        -     action the policy chose
action             int64        -     action executed (differs from intended only under noise)
action_label       dict         -     label of the executed action (C, D, or the contribution)
probs              list<double> null  probability of each action when the policy knows it
p_cooperate        double       null  probability of the game's cooperative action (action 0: C, the first action,
                                         in 2x2 games); null when unknown and in donation games
source             dict         -     rule | strategist | llm | fallback | replay (recorded study data) | replay-model
protocol           dict         null  prompt protocol (letter | motivation | repeated...) for LLM-style policies
prompt             string       null  the chat messages shown to the policy, as JSON
completion         string       null  the text the policy wrote (answer and motivation)
parse_status       dict         null  ok | scored | default (study parser: no D, counted C) | failed | fallback
prompt_tokens      int64        null  prompt length in tokens
completion_tokens  int64        null  completion length in tokens
other_mass         double       null  probability mass on neither label (scoring mode)
error              string       null  backend failure text after retries, if any
reward             double       null  payoff of this round (null in sweeps without a co-player)
cumulative_reward  double       null  payoff so far including this round
"""

#: (column, arrow type name, nullable, meaning)
COLUMNS: tuple[tuple[str, str, bool, str], ...] = tuple(
    (name, DICT if kind == "dict" else kind, null == "null", meaning)
    for name, kind, null, meaning in (line.split(maxsplit=3)
                                      for line in _TABLE.strip().replace("\n" + " " * 41, " ").splitlines()))

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

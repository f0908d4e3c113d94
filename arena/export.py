"""Export a policy's decisions from a run as TRL-ready conversational JSONL and the same rows as Parquet.

Each line: `messages` (system, user, assistant = the policy's answer and motivation), `letter_messages` (the same
scenario under the letter-only protocol, rebuilt from the episode's history), `teacher_probs` (the policy's exact
action probabilities when known), `action_labels`, and provenance columns (run, episode, game, framing, round,
parse_status). By default the rows kept are the answers the policy itself gave (parse_status in KEPT_STATUSES):
read answers ("ok"), scored ones ("scored") and answers resolved by the parser's declared default ("default": under
the study parser a reply without a standalone D is C, and the study trained on those replies too); answers that
failed to parse ("failed", "fallback") are left out unless asked for (`parse_ok_only=False`).

The Parquet twin holds the same records with the same types: `messages` and `letter_messages` are lists of
{role, content} structs, so `datasets.load_dataset("parquet", ...)` gives the conversations the JSONL gives and
both train in TRL's `SFTTrainer` unchanged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tomarena.agents.llm.prompts import build_messages
from tomarena.arena.store import RunStore
from tomarena.envs.framings import get_framing
from tomarena.envs.games import get_game
from tomarena.envs.social_dilemma import Observation
from tomarena.errors import ConfigError, TraceError

PROVENANCE = ("run_id", "episode_id", "game", "framing", "round", "policy", "protocol", "parse_status", "agent")
#: parse statuses exported by default: the policy's own answer decided the row (read, scored, or the parser's default)
KEPT_STATUSES = ("ok", "scored", "default")


def _letter_messages(row: Any, history: list[tuple[tuple[int, ...], tuple[float, ...]]]) -> list[dict[str, str]]:

    horizon = None if row["horizon"] is None or row["horizon"] != row["horizon"] else int(row["horizon"])
    obs = Observation(get_game(row["game"]), get_framing(row["framing"]), int(row["agent"].split("_")[1]),
                      int(row["round"]), horizon, tuple(a for a, _ in history), tuple(p for _, p in history))
    return build_messages(obs, "letter")


def _episode_history(ep: Any) -> dict[int, tuple[tuple[int, ...], tuple[float, ...]]]:
    """Joint actions and payoffs per round of one episode's rows."""
    out = {}
    for rnd, grp in ep.groupby("round"):
        grp = grp.sort_values("agent", key=lambda s: s.str.split("_").str[1].astype(int))
        out[int(rnd)] = (tuple(int(a) for a in grp["action"]), tuple(float(r) for r in grp["reward"].fillna(0.0)))
    return out


def select_rows(frame: Any, policy: str, parse_ok_only: bool, games: Sequence[str] | None,
                framings: Sequence[str] | None, rounds: Sequence[int] | None, max_per_scenario: int | None) -> Any:
    """The rows of `policy` that carry a prompt and a completion, filtered as asked (`parse_ok_only` keeps the
    KEPT_STATUSES: read, scored and parser-default answers)."""
    if policy not in set(frame["policy"]):
        known = ", ".join(sorted(set(frame["policy"]))) or "none"
        raise ConfigError(f"policy {policy!r} did not play in this run; policies: {known}")
    df = frame[(frame["policy"] == policy) & frame["prompt"].notna() & frame["completion"].notna()]
    if parse_ok_only:
        df = df[df["parse_status"].isin(KEPT_STATUSES)]
    if games:
        df = df[df["game"].isin(games)]
    if framings:
        df = df[df["framing"].isin(framings)]
    if rounds:
        df = df[df["round"].isin(rounds)]
    if max_per_scenario:
        df = df.groupby(["game", "framing"], group_keys=False).head(max_per_scenario)
    return df


def is_recorded(manifest: dict[str, Any], policy: str) -> bool:
    """Whether `policy` in a run with this manifest is recorded play (an imported data set, e.g. akata/gpt-4)."""
    return (manifest.get("models") or {}).get(policy, {}).get("kind") == "recorded"


def export_traces(run: str | Path, policy: str, out: str | Path, *, parse_ok_only: bool = True,
                  games: Sequence[str] | None = None, framings: Sequence[str] | None = None,
                  rounds: Sequence[int] | None = None, max_per_scenario: int | None = None,
                  sample: int | None = None, seed: int = 0, overwrite: bool = False) -> int:
    """Write `out` (.jsonl) and the same examples as `out` with suffix .parquet; returns the number of examples.
    `sample` keeps that many rows drawn without replacement (seeded) after the filters. Recorded play (an imported
    data set) is exported as tomarena's own letter prompt for that game and history answered with the recorded
    letter, and teacher_probs one-hot on the recorded choice. An existing `out` is refused unless `overwrite`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    if out.suffix != ".jsonl":
        raise ConfigError(f"--out must end in .jsonl, got {out.name!r}")
    if not overwrite and (out.exists() or out.with_suffix(".parquet").exists()):
        raise ConfigError(f"{out} already exists; choose another --out or pass --force to replace it")
    store = RunStore(run)
    recorded = is_recorded(store.read_manifest(), policy)
    frame = store.read_frame()
    if frame.empty:
        raise TraceError(f"run {run} holds no traces yet")
    chosen = select_rows(frame, policy, parse_ok_only, games, framings, rounds, max_per_scenario)
    if sample is not None and sample < len(chosen):
        chosen = chosen.sample(n=sample, random_state=seed).sort_index()
    if chosen.empty:
        raise TraceError(f"no rows of {policy!r} in {run} carry a prompt and a completion after the filters")
    histories = {eid: _episode_history(ep) for eid, ep in frame[frame["episode_id"].isin(chosen["episode_id"])]
                 .groupby("episode_id")}
    examples = []
    for _, row in chosen.iterrows():
        hist = histories[row["episode_id"]]
        past = [hist[r] for r in range(int(row["round"])) if r in hist]
        letter, labels = _letter_messages(row, past), list(_labels(row["game"]))
        if recorded:  # tomarena's prompt for that game and history -> the recorded choice
            messages = letter + [{"role": "assistant", "content": labels[int(row["action"])]}]
            probs = [1.0 if i == int(row["action"]) else 0.0 for i in range(len(labels))]
        else:
            messages = json.loads(row["prompt"]) + [{"role": "assistant", "content": row["completion"]}]
            probs = row["probs"]
        ex = {"messages": messages, "letter_messages": letter,
              "teacher_probs": None if probs is None else [float(p) for p in probs], "action_labels": labels}
        ex.update({k: (int(row[k]) if k == "round" else row[k]) for k in PROVENANCE})
        examples.append(ex)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp, ptmp = out.with_name(f".{out.name}.tmp"), out.with_name(f".{out.stem}.parquet.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            for ex in examples:
                fh.write(json.dumps(ex, ensure_ascii=False) + "\n")
        os.replace(tmp, out)
        pq.write_table(pa.Table.from_pylist(examples, schema=parquet_schema()), ptmp)
        os.replace(ptmp, out.with_suffix(".parquet"))
    finally:  # a failed write leaves no temp file behind
        tmp.unlink(missing_ok=True)
        ptmp.unlink(missing_ok=True)
    return len(examples)


def parquet_schema() -> Any:
    """The Parquet twin's columns: chat messages as lists of {role, content} structs (what `datasets` and TRL's
    SFTTrainer read as conversations, like the JSONL), probabilities as lists of floats, provenance as scalars."""
    import pyarrow as pa

    chat = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    return pa.schema([("messages", chat), ("letter_messages", chat), ("teacher_probs", pa.list_(pa.float64())),
                      ("action_labels", pa.list_(pa.string())),
                      *((k, pa.int64() if k == "round" else pa.string()) for k in PROVENANCE)])


def _labels(game: str) -> tuple[str, ...]:

    return get_game(game).action_labels

"""Builders of small run directories (manifest + Parquet shards in the trace schema) for the analysis tests."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tomarena.envs import GAMES
from tomarena.schema import COLUMN_NAMES, arrow_schema


def row(**kw: Any) -> dict[str, Any]:
    """One trace row with neutral defaults; keyword arguments override columns."""
    base = {c: None for c in COLUMN_NAMES}
    base.update({"run_id": "run", "kind": "sweep", "episode_id": "e#0", "match_key": "e", "repetition": 0, "seed": 0,
                 "game": "prisoners_dilemma", "framing": "ir", "horizon": 1, "round": 0, "agent": "player_0",
                 "policy": "p", "opponents": "", "intended_action": 0, "action": 0, "action_label": "C",
                 "source": "rule"})
    base.update(kw)
    return base


def sweep_rows(policy: str, framing: str, game: str, n: int, k: int, *, p: float | None = None,
               n_invalid: int = 0) -> list[dict[str, Any]]:
    """n one-shot rows of `policy`, k of them C; with p every row carries p_cooperate=p (scoring mode),
    else rows look like sampled LLM answers; n_invalid extra rows have parse_status 'failed'."""
    rows = []
    for i in range(n + n_invalid):
        a = 0 if i < k else 1
        failed = i >= n
        llm = {"source": "llm", "protocol": "letter", "prompt": "[]", "completion": "xyz" if failed else "CD"[a],
               "parse_status": "failed" if failed else ("scored" if p is not None else "ok")}
        rows.append(row(policy=policy, framing=framing, game=game, episode_id=f"{policy}|{game}|{framing}#{i}",
                        match_key=f"{policy}|{game}|{framing}", repetition=i, intended_action=a, action=a,
                        action_label="CD"[a], probs=[p, 1 - p] if p is not None else None, p_cooperate=p, **llm))
    return rows


def match_rows(a: str, b: str, actions_a: Sequence[int], actions_b: Sequence[int], *, game: str = "prisoners_dilemma",
               framing: str = "none", rep: int = 0, exact: bool = True) -> list[dict[str, Any]]:
    """Rows of one repeated two-player match with the given action sequences (rewards from the game)."""
    g = GAMES.get(game)
    key = f"{a},{b} | {game} | {framing}"
    rows, totals = [], [0.0, 0.0]
    for t, (x, y) in enumerate(zip(actions_a, actions_b, strict=True)):
        pay = g.payoff((x, y))
        for seat, (me, act, other) in enumerate(((a, x, b), (b, y, a))):
            totals[seat] += pay[seat]
            rows.append(row(kind="tournament", episode_id=f"{key}#{rep}", match_key=key, repetition=rep, game=game,
                            framing=framing, horizon=len(actions_a), round=t, agent=f"player_{seat}", policy=me,
                            opponents=other, intended_action=act, action=act, action_label="CD"[act],
                            probs=[1.0 - act, float(act)] if exact else None,
                            p_cooperate=1.0 - act if exact else None, reward=pay[seat],
                            cumulative_reward=totals[seat]))
    return rows


def write_run(root: Path, rows: list[dict[str, Any]], *, kind: str = "sweep", roles: dict | None = None,
              extra_files: dict[str, bytes] | None = None) -> Path:
    """Write RUN/manifest.json and RUN/traces/part-0.parquet (plus any extra files under traces/)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (root / "traces").mkdir(parents=True, exist_ok=True)
    policies = sorted({r["policy"] for r in rows})
    manifest = {"run_id": root.name, "kind": kind, "seed": 0, "config": {}, "policies": policies,
                "versions": {}, "git_sha": None}
    if roles:
        manifest["roles"] = roles
    (root / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    pq.write_table(pa.Table.from_pylist(rows, schema=arrow_schema()), root / "traces" / "part-0.parquet")
    for name, data in (extra_files or {}).items():
        (root / "traces" / name).write_bytes(data)
    return root


def test_fixture_rows_follow_the_schema(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    run = write_run(tmp_path / "r", sweep_rows("m", "ir", "stag_hunt", 3, 2) + match_rows("x", "y", [0, 1], [1, 1]))
    table = pq.read_table(run / "traces" / "part-0.parquet")
    assert table.schema.equals(arrow_schema())
    assert table.num_rows == 3 + 4

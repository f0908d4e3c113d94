"""Closed-loop signatures: how a policy plays a repeated 2x2 game against fixed partners (always the first option,
always the second, the second option once), round by round. The signature is the policy's own moves as letters
(e.g. "AAAAAAAAAA" against an always-cooperating partner), its probability of the first option per round where
the trace has it, and its mean payoff per round; one row per (who, partner, seat). Reads trace frames
(analysis.load); pandas only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def closed_loop_signature(frame: Any, focal: Mapping[str, str], partners: Sequence[str]) -> list[dict[str, Any]]:
    """The signature of each focal policy (`who` -> policy label) against each partner, per seat it held: moves and
    the partner's moves of the first such match as letters, P(first option) per round averaged over the matches
    (None where no row has it), and the mean payoff per round over them. Pairs that never met are left out."""
    rows: list[dict[str, Any]] = []
    for who, policy in focal.items():
        own = frame[(frame["policy"] == policy)]
        for partner in partners:
            met = own[own["opponents"] == partner]
            for agent, seat_rows in sorted(met.groupby("agent"), key=lambda kv: kv[0]):
                rows.append(_seat_signature(frame, who, policy, partner, str(agent), seat_rows))
    return rows


def _seat_signature(frame: Any, who: str, policy: str, partner: str, agent: str, seat_rows: Any) -> dict[str, Any]:
    """One signature row: the focal policy in seat `agent` against `partner`."""
    episodes = sorted(seat_rows["episode_id"].unique())
    first = seat_rows[seat_rows["episode_id"] == episodes[0]].sort_values("round")
    other = frame[(frame["episode_id"] == episodes[0]) & (frame["agent"] != agent)].sort_values("round")
    p = seat_rows.groupby("round")["p_cooperate"].mean()
    return {"who": who, "policy": policy, "partner": partner, "seat": int(agent.split("_")[1]),
            "matches": len(episodes), "moves": "".join(first["action_label"].astype(str)),
            "partner_moves": "".join(other["action_label"].astype(str)),
            "p_first": [None if x != x else round(float(x), 4) for x in p.to_numpy()],
            "mean_payoff": round(float(seat_rows["reward"].mean()), 4)}


def format_signature(rows: Sequence[Mapping[str, Any]]) -> str:
    """The signature rows as aligned text: who, seat, partner, moves (partner's moves) and P(first option)."""
    lines = []
    for r in rows:
        p = " ".join("-" if x is None else f"{x:.2f}" for x in r["p_first"])
        lines.append(f"  {r['who']:<8} seat {r['seat']} vs {r['partner']:<26} {r['moves']} "
                     f"(partner {r['partner_moves']})  {r['mean_payoff']:.2f}/round  P(first option): {p}")
    return "\n".join(lines)

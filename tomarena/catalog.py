"""What `tomarena list` prints: the registered games, framings and policies as rows (dicts)."""

from __future__ import annotations

from typing import Any


def _profile(labels: tuple[str, ...], profile: tuple[int, ...]) -> str:
    return "(" + ",".join(labels[a] for a in profile) + ")"


def _game_row(gid: str) -> dict[str, Any]:
    from tomarena.envs.games import GAMES, DonationGame

    g = GAMES.get(gid)
    row: dict[str, Any] = {"id": gid, "name": g.name, "players": g.n_players, "actions": list(g.action_labels),
                           "tags": list(g.tags)}
    if isinstance(g, DonationGame):
        row.update(endowment=g.endowment, multiplier=g.multiplier,
                   equilibria=[f"everyone gives {g.dominant_strategy_equilibrium()[0]} (dominant strategy)"],
                   social_optimum=f"everyone gives {g.social_optimum()[0]}")
        return row
    row["payoffs"] = [[list(cell) for cell in r] for r in g.payoffs]
    if g.rstp:
        row.update({k: float(v) for k, v in g.rstp.items()})
    eqs = g.nash_equilibria()
    row["equilibria"] = [e.label(g.action_labels) for e in eqs]
    row["equilibrium_strategies"] = [[list(s) for s in e.strategies] for e in eqs]
    row["pareto"] = [_profile(g.action_labels, ij) for ij in g.pareto_efficient()]
    rd = g.risk_dominant()
    row["risk_dominant"] = None if rd is None else _profile(g.action_labels, rd)
    return row


def _framing_row(fid: str) -> dict[str, Any]:
    from tomarena.envs.framings import FRAMINGS

    f = FRAMINGS.get(fid)
    return {"id": fid, "title": f.title, "sample": f.sample, "co_player": f.co_player, "option_c": f.option_c,
            "option_d": f.option_d, "goal": f.goal, **f.attributes}


def listing(what: str) -> list[dict[str, Any]]:
    """Rows describing every registered entry of `what` ('games', 'framings' or 'policies')."""
    if what == "games":
        from tomarena.envs.games import GAMES

        return [_game_row(g) for g in GAMES.ids()]
    if what == "framings":
        from tomarena.envs.framings import FRAMINGS

        return [_framing_row(f) for f in FRAMINGS.ids()]
    import tomarena.agents  # noqa: F401  (wires the registry loader)
    from tomarena.agents.base import POLICIES

    return [{"id": p, "kind": POLICIES.get(p).kind, "summary": POLICIES.get(p).summary} for p in POLICIES.ids()]


def format_listing(what: str, rows: list[dict[str, Any]]) -> str:
    """A readable table of `rows`."""
    lines = []
    for r in rows:
        if what == "games":
            pay = " ".join(f"{k}={r[k]:g}" for k in ("R", "S", "T", "P") if k in r)
            if "endowment" in r:
                pay = f"{r['players']} players, endowment {r['endowment']}, multiplier {r['multiplier']:g}"
            rd = f"  risk-dominant {r['risk_dominant']}" if r.get("risk_dominant") else ""
            lines.append(f"{r['id']:<28} {pay:<26} NE: {'; '.join(r['equilibria'])}{rd}  [{', '.join(r['tags'])}]")
        elif what == "framings":
            lines.append(f"{r['id']:<14} {r['sample']:<5} {r['title']:<24} warmth={r['warmth']:.1f} "
                         f"closeness={r['closeness']:.1f} competition={r['competition']:.1f}")
        else:
            lines.append(f"{r['id']:<36} {r['kind']:<11} {r['summary']}")
    return "\n".join(lines)

"""What `tomarena list` prints: the registered games, framings and policies as rows (dicts)."""

from __future__ import annotations

from typing import Any


def _game_row(gid: str) -> dict[str, Any]:
    from tomarena.envs.games import GAMES, DonationGame

    g = GAMES.get(gid)
    row: dict[str, Any] = {"id": gid, "name": g.name, "players": g.n_players, "tags": list(g.tags)}
    if isinstance(g, DonationGame):
        row.update(endowment=g.endowment, multiplier=g.multiplier,
                   equilibria=["everyone gives 0 (dominant strategy)"],
                   social_optimum=f"everyone gives {g.endowment}")
        return row
    row["payoffs"] = [[list(cell) for cell in r] for r in g.payoffs]
    if g.rstp:
        row.update({k: float(v) for k, v in g.rstp.items()})
    row["equilibria"] = [e.label(g.action_labels) for e in g.nash_equilibria()]
    row["pareto"] = ["(" + ",".join(g.action_labels[a] for a in ij) + ")" for ij in g.pareto_efficient()]
    rd = g.risk_dominant()
    row["risk_dominant"] = None if rd is None else "(" + ",".join(g.action_labels[a] for a in rd) + ")"
    return row


def listing(what: str) -> list[dict[str, Any]]:
    """Rows describing every registered entry of `what` ('games', 'framings' or 'policies')."""
    if what == "games":
        from tomarena.envs.games import GAMES

        return [_game_row(g) for g in GAMES.ids()]
    if what == "framings":
        from tomarena.envs.framings import FRAMINGS

        return [{"id": f, "title": FRAMINGS.get(f).title, "sample": FRAMINGS.get(f).sample,
                 **FRAMINGS.get(f).attributes} for f in FRAMINGS.ids()]
    from tomarena.agents.base import POLICIES
    import tomarena.agents  # noqa: F401  (wires the registry loader)

    return [{"id": p, "kind": POLICIES.get(p).kind, "summary": POLICIES.get(p).summary} for p in POLICIES.ids()]


def format_listing(what: str, rows: list[dict[str, Any]]) -> str:
    """A readable table of `rows`."""
    lines = []
    for r in rows:
        if what == "games":
            pay = " ".join(f"{k}={r[k]:g}" for k in ("R", "S", "T", "P") if k in r)
            if "endowment" in r:
                pay = f"{r['players']} players, endowment {r['endowment']}, multiplier {r['multiplier']:g}"
            lines.append(f"{r['id']:<28} {pay:<26} NE: {'; '.join(r['equilibria'])}  [{', '.join(r['tags'])}]")
        elif what == "framings":
            lines.append(f"{r['id']:<14} {r['sample']:<5} {r['title']:<24} warmth={r['warmth']:.1f} "
                         f"closeness={r['closeness']:.1f} competition={r['competition']:.1f}")
        else:
            lines.append(f"{r['id']:<36} {r['kind']:<11} {r['summary']}")
    return "\n".join(lines)

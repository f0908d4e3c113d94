"""What `tomarena list` prints: the registered games, framings and policies as rows (dicts)."""

from __future__ import annotations

import importlib
import textwrap
from collections.abc import Callable
from typing import Any

from tomarena.agents.base import POLICIES
from tomarena.agents.policy_options import option_rows, options_model
from tomarena.agents.resolve import PREFIXES
from tomarena.agents.strategies.axelrod_adapter import strategy_table
from tomarena.envs.framings import FRAMINGS
from tomarena.envs.games import GAMES

#: spec families that take a name after the prefix (agents/resolve.py PREFIXES), as `list policies` shows them
FAMILIES = {"axelrod": ("axelrod:<Name>", "any Axelrod-library strategy by name, e.g. axelrod:Grudger, "
                        "axelrod:Tit For Tat (`tomarena list policies --axelrod` lists all)"),
            "hf": ("hf:<path-or-model-id>", "a local transformers causal LM (directory or cached id)"),
            "openai": ("openai:<base-url>", "an OpenAI-compatible chat-completions endpoint"),
            "sim": ("sim:flat", "a simulated accelerator (fixed latency per forward up to max_batch, hash-derived "
                    "probabilities): a benchmark device only")}


def _profile(labels: tuple[str, ...], profile: tuple[int, ...]) -> str:
    return "(" + ",".join(labels[a] for a in profile) + ")"


def _game_row(gid: str) -> dict[str, Any]:
    g = GAMES.get(gid)
    row: dict[str, Any] = {"id": gid, "name": g.name, "kind": g.kind, "family": g.family, "players": g.n_players,
                           "actions": list(g.action_labels), "tags": list(g.tags)}
    if g.kind == "donation":
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
    f = FRAMINGS.get(fid)
    return {"id": fid, "title": f.title, "sample": f.sample, "co_player": f.co_player, "option_c": f.option_c,
            "option_d": f.option_d, "goal": f.goal, **f.attributes}


def listing(what: str) -> list[dict[str, Any]]:
    """Rows describing every registered entry of `what` ('games', 'framings' or 'policies')."""
    if what == "games":
        return [_game_row(g) for g in GAMES.ids()]
    if what == "framings":
        return [_framing_row(f) for f in FRAMINGS.ids()]
    if what == "axelrod":
        return axelrod_rows()
    rows = [{"id": p, "kind": POLICIES.get(p).kind, "summary": POLICIES.get(p).summary,
             "options": policy_options(p, POLICIES.get(p).factory)} for p in POLICIES.ids()]
    return rows + family_rows()


def policy_options(policy_id: str, factory: Callable[..., Any], first: bool = False) -> list[dict[str, Any]]:
    """Name, type, default and meaning of each option `factory` accepts, read from its options model (the one
    `resolve_policy` validates with; `first` skips the name argument of a spec family when the model is derived)."""
    return option_rows(options_model(factory, skip_first=first))


def family_rows() -> list[dict[str, Any]]:
    """One row per spec family (axelrod:, hf:, openai:) with the options its factory takes."""
    rows = []
    for prefix, (module, fn) in PREFIXES.items():
        spec, summary = FAMILIES.get(prefix, (f"{prefix}:<name>", ""))
        factory = getattr(importlib.import_module(module), fn)
        rows.append({"id": spec, "kind": prefix, "summary": summary, "options": policy_options(prefix, factory, True)})
    return rows


def axelrod_rows() -> list[dict[str, Any]]:
    """Every strategy of the installed Axelrod library (from its name table; the library is not imported)."""
    return [{"id": f"axelrod:{i.class_name}", "name": i.name, "stochastic": i.stochastic,
             "reads": list(i.makes_use_of), "vectorised": i.vectorised, "refused": i.refused or None}
            for i in sorted(strategy_table(), key=lambda i: i.class_name.lower())]


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
        elif what == "axelrod":
            kind = "stochastic" if r["stochastic"] else "deterministic"
            notes = ", ".join([*(f"reads the {x}" for x in r["reads"]), *(["vectorised"] if r["vectorised"] else []),
                               *([f"refused: {r['refused']}"] if r["refused"] else [])])
            lines.append(f"{r['id']:<40} {r['name']:<40} {kind:<13} {notes}")
        else:
            lines.append(textwrap.fill(f"{r['id']:<36} {r['kind']:<11} {r['summary']}", width=120,
                                       subsequent_indent=" " * 49, break_on_hyphens=False))
            lines.extend(f"    {o['name']}={_show(o['default'])} ({o['type']}): {o['description']}"
                         for o in r["options"])
    return "\n".join(lines)


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(_show(v) for v in value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)

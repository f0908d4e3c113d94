"""What `tomarena list` prints: the registered games, framings and policies as rows (dicts)."""

from __future__ import annotations

import importlib
import inspect
import textwrap
import typing
from collections.abc import Callable
from typing import Any

from tomarena.agents.axelrod_adapter import strategy_table
from tomarena.agents.base import POLICIES
from tomarena.agents.resolve import PREFIXES
from tomarena.envs.framings import FRAMINGS
from tomarena.envs.games import GAMES

#: What each policy option means (the names, types and defaults come from the factory signatures, the same source
#: `agents.resolve.build_with_options` validates against). Keyed by option name; "<policy id or prefix>:<name>"
#: where a name means something else for that policy. tests/test_cli_list.py checks every option has an entry.
OPTION_HELP: dict[str, str] = {
    "seed": "fixes the strategy's own RNG in every match (stochastic Axelrod strategies; default: drawn from the "
            "match's rng stream)",
    "p": "probability of C each round",
    "classic/memory_one:p": "p(C) after CC, CD, DC, DD (own last move first), comma list",
    "first": "p(C) in round 0",
    "classic/conditional_cooperator:first": "contribution in round 0",
    "generosity": "p(C) after the co-player defected (C after C)",
    "index": "which Nash equilibrium of the stage game to play, as `tomarena list games` numbers them (pure first)",
    "amount": "contribution every round",
    "at": "the round (from 1) in which it plays D; C in every other round",
    "motivation": "write a natural-language motivation with each decision (study: default = as the model was asked)",
    "rationality": "logit precision per point of utility (0 = uniform)",
    "depth": "weight of the anticipated co-player response in the belief (0 = prior only), in [0, 1]",
    "loss_aversion": "weight of points below the safe (max-min) payoff",
    "exploited": "share of a positive social weight kept where the co-player earns more, in [0, 1]",
    "altruism": "base weight on the co-player's payoff",
    "w_warmth": "social weight per unit of the framing's warmth",
    "w_closeness": "social weight per unit of the framing's closeness",
    "w_shared_fate": "social weight per unit of the framing's shared fate",
    "w_public_scrutiny": "social weight per unit of the framing's public scrutiny",
    "w_competition": "social weight removed per unit of the framing's competition",
    "trust": "base prior that the co-player chooses C",
    "trust_bond": "trust added per unit of the framing's bond (warmth, closeness, shared fate)",
    "trust_rivalry": "trust removed per unit of the framing's competition",
    "reciprocity": "shift of the social weight per unit of the co-player's (2 * cooperation - 1)",
    "memory": "decay of older rounds in the weighted cooperation, in [0, 1]",
    "repeated": "repeated rounds of a 2x2 game: akata (LLaMa-2-70b-chat's recorded persistence, the 70b's default) or "
                "reciprocity (drift toward the co-player's recent choices, the 7b models' default)",
    "prior_weight": "weight of the prior against observed rounds",
    "conformity": "donation game: cost per squared dollar away from what the others give",
    "adapter": "path of a LoRA adapter directory to load on top of the model",
    "mode": "score (exact probabilities of the action labels) or generate (sample text and parse it)",
    "protocol": "prompt protocol: letter (answer with the label) or motivation (explain, then choose)",
    "temperature": "softmax temperature over the label scores, or sampling temperature (default: the decoding's)",
    "max_new_tokens": "generate: most tokens per answer (default: the decoding's)",
    "fallback": "what an unparsable answer becomes: score, random, or an action label such as C",
    "dtype": "torch dtype of the weights (float32, bfloat16, ...)",
    "trust_remote_code": "allow custom model code from the model directory",
    "device": "torch device (cpu, cuda, ...)",
    "batch_size": "prompts per forward pass",
    "top_p": "generate: nucleus sampling mass (default: the decoding's)",
    "top_k": "generate: sample among the k likeliest tokens, 0 = off (default: the decoding's)",
    "repetition_penalty": "generate: penalty on repeated tokens, 1 = off (default: the decoding's)",
    "parser": "answer parser: robust or study (default: the decoding's)",
    "decoding": "named decoding preset: default or study (the study's sampling and parser)",
    "model": "model name sent to the endpoint",
    "api_key_env": "environment variable holding the endpoint's API key",
    "timeout": "seconds to wait for one request",
    "max_retries": "retries of a failed request before the decision records the error",
    "backoff": "seconds before the first retry (doubling each time)",
    "top_logprobs": "score: how many top tokens' log-probs the endpoint returns per answer",
    "latency_ms": "simulated accelerator: milliseconds slept per forward pass of up to max_batch prompts",
    "max_batch": "simulated accelerator: prompts per forward pass (cost is flat up to it)",
    "sim:p": "simulated accelerator: mean probability of the first label (C)",
    "spread": "simulated accelerator: width of the hash-derived spread of p(C) around p, in [0, 1]",
    "concurrency": "requests of one batch in flight at once, 1..256 (1 = one after another)",
}
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
    """Name, type, default and meaning of each option `factory` accepts (its signature; `first` skips the name
    argument of a spec family)."""
    params = list(inspect.signature(factory, eval_str=True).parameters.values())[1 if first else 0:]
    out = []
    for p in params:
        if p.kind not in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD):
            continue
        ann = p.annotation
        type_name = getattr(ann, "__name__", None) if typing.get_origin(ann) is None else None
        default = None if p.default is inspect.Parameter.empty else p.default
        out.append({"name": p.name, "type": type_name or str(ann).replace("NoneType", "None"),
                    "default": list(default) if isinstance(default, tuple) else default,
                    "description": option_help(policy_id, p.name)})
    return out


def option_help(policy_id: str, name: str) -> str:
    """The meaning of option `name` of `policy_id` (a policy id or spec family), "" when undeclared."""
    return OPTION_HELP.get(f"{policy_id}:{name}", OPTION_HELP.get(name, ""))


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

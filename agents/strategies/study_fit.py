"""Fit of Llama-2-70b-chat's recorded repeated play (Akata et al.), shipped as
tomarena/data/study/llama2_repeated_fit.json and read by the study replay `study/llama2-70b` in repeated rounds
(agents/strategies/study.py says how).

Data: every decision of `act_llama2` (Llama-2-70b-chat, temperature 0) in tomarena/data/akata/all_games_rounds.csv:
144 Robinson-Goforth games, 10 rounds, against itself and four other LLMs, 14,400 decisions. Option 1 is the first row
or column of the payoff table (`choice_option1`), tomarena's action 0.

Two things are fitted, both from counts (exact rational arithmetic, so a re-fit reproduces the file bit for bit):
- `table`: P(option 1) in round 1, and in rounds 2-10 given (own last choice, partner's last choice), with counts;
- `persistence`: lambda_x per partner's last choice x in P(option 1) = pi_g + lambda_x * (own last is option 1 - pi_g),
  least squares over rounds 2-10, pi_g = Llama-2's option-1 share in game g's rounds 2-10: how strongly the model
  sticks to its own last choice within a game, apart from the game's level.

Re-fit and rewrite the shipped file: `python -m tomarena.agents.strategies.study_fit [--csv PATH] [--out PATH]`. The
csv module only (no pandas).
"""

from __future__ import annotations

import argparse
import csv
import functools
import hashlib
import json
import os
from collections import Counter, defaultdict
from fractions import Fraction
from pathlib import Path
from typing import Any

from tomarena import study
from tomarena.errors import ConfigError

FIT_FILE = study.DATA_DIR / "llama2_repeated_fit.json"
ROUNDS_NAME = "all_games_rounds.csv"
PACKAGED = Path(study.__file__).parent / "data" / "akata" / ROUNDS_NAME
#: the same file where the data first arrived (used only when the packaged copy is absent)
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "akata" / ROUNDS_NAME
MODEL = "act_llama2"
SOURCE = "github.com/eliaka/repeatedgames @ 224a605a21127cac69763f990e077f7b05abd422 (MIT, (c) 2024 Elif Akata)"
CITATION = ("Akata, E., Schulz, L., Coda-Forno, J., Oh, S. J., Bethge, M. & Schulz, E. (2025). Playing repeated "
            "games with large language models. Nature Human Behaviour. arXiv:2305.16867.")
#: the table's cells: (round, own last choice, partner's last choice); choices 1 = option 1, 2 = option 2
CELLS = (("first", None, None), ("later", 1, 1), ("later", 1, 2), ("later", 2, 1), ("later", 2, 2))


def rounds_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The recordings: `path` if given, else the packaged copy, else the shared one; ConfigError when none exists."""
    candidates = [Path(path)] if path is not None else [PACKAGED, SHARED]
    for p in candidates:
        if p.is_file():
            return p
    raise ConfigError(f"Akata recordings not found at {', '.join(map(str, candidates))}; pass --csv PATH")


def llama2_decisions(path: Path) -> list[tuple[int, int, int | None, int | None]]:
    """(game, own choice, own last, partner's last) per decision of Llama-2-70b-chat, choices 1/2 (option 1/2),
    lasts None in round 1; self-play counts both seats."""
    matches: dict[tuple[str, str, str], list[dict[str, str]]] = defaultdict(list)
    with path.open(encoding="utf-8", newline="") as fh:
        for r in csv.DictReader(fh):
            matches[(r["game_number"], r["player1"], r["player2"])].append(r)
    out = []
    for (game, p1, p2), rows in matches.items():
        rows.sort(key=lambda r: int(r["round"]))
        if [int(r["round"]) for r in rows] != list(range(1, 11)):
            raise ConfigError(f"{path}: match {game}/{p1}/{p2} does not have rounds 1-10 once each")
        for seat, model in ((1, p1), (2, p2)):
            if model != MODEL:
                continue
            last: tuple[int, int] | None = None
            for r in rows:
                own = 1 if r[f"answer{seat}"] == r["choice_option1"] else 2
                partner = 1 if r[f"answer{3 - seat}"] == r["choice_option1"] else 2
                out.append((int(game), own, *(last if last else (None, None))))
                last = (own, partner)
    return out


def _table(decisions: list[tuple[int, int, int | None, int | None]]) -> list[dict[str, Any]]:
    counts = Counter((("first" if o is None else "later"), o, x, c) for _, c, o, x in decisions)
    rows = []
    for rnd, own, partner in CELLS:
        n1, n2 = counts[(rnd, own, partner, 1)], counts[(rnd, own, partner, 2)]
        rows.append({"round": rnd, "own_last": own, "partner_last": partner, "n": n1 + n2, "n_option1": n1,
                     "p_option1": n1 / (n1 + n2)})
    return rows


def _persistence(decisions: list[tuple[int, int, int | None, int | None]]) -> dict[str, Any]:
    later = [(g, int(c == 1), int(o == 1), x) for g, c, o, x in decisions if o is not None]
    n_game, k_game = Counter(g for g, *_ in later), Counter(g for g, y, *_ in later if y)
    level = {g: Fraction(k_game[g], n) for g, n in n_game.items()}
    out = {}
    for x, name in ((1, "after_partner_option1"), (2, "after_partner_option2")):
        num, den, games, n = Fraction(0), Fraction(0), set(), 0
        for g, y, own, xx in later:
            if xx != x:
                continue
            n += 1
            d = own - level[g]
            num, den = num + (y - level[g]) * d, den + d * d
            if d:
                games.add(g)
        out[name] = {"lambda": float(num / den), "decisions": n, "games_informative": len(games)}
    return out


def fit(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The fit as a JSON-ready dict: data provenance, the conditional table with counts, the persistence lambdas."""
    src = rounds_path(path)
    decisions = llama2_decisions(src)
    return {
        "what": "Llama-2-70b-chat's recorded repeated play (Akata et al.): P(option 1) by round and last choices, "
                "and its persistence within a game; option 1 = first row/column of the payoff table = action 0",
        "how": "python -m tomarena.agents.strategies.study_fit",
        "data": {"file": f"tomarena/data/akata/{ROUNDS_NAME}", "sha256": hashlib.sha256(src.read_bytes()).hexdigest(),
                 "source": SOURCE, "citation": CITATION, "model": MODEL, "decisions": len(decisions),
                 "games": len({g for g, *_ in decisions})},
        "table": _table(decisions),
        "persistence": _persistence(decisions),
        "replay": "rounds >= 1 of a repeated game: P(C) = p0 + lambda[co-player's last: option 1 = C] * "
                  "(1[own last = C] - p0), p0 = the scenario's recorded one-shot P(C)",
    }


@functools.cache
def load_fit() -> dict[str, Any]:
    """The shipped fit (tomarena/data/study/llama2_repeated_fit.json), read once."""
    return json.loads(FIT_FILE.read_text(encoding="utf-8"))


def persistence() -> tuple[float, float]:
    """(lambda after the co-player's option 1 / C, lambda after its option 2 / D) from the shipped fit."""
    p = load_fit()["persistence"]
    return p["after_partner_option1"]["lambda"], p["after_partner_option2"]["lambda"]


def main(argv: list[str] | None = None) -> int:
    """Re-fit from the recordings and write the JSON file (default: the shipped one)."""
    ap = argparse.ArgumentParser(prog="python -m tomarena.agents.strategies.study_fit",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--csv", type=Path, default=None, help="all_games_rounds.csv (default: the packaged copy)")
    ap.add_argument("--out", type=Path, default=FIT_FILE, help="JSON file to write")
    args = ap.parse_args(argv)
    result = fit(args.csv)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    lam = result["persistence"]
    print(f"wrote {args.out}: {result['data']['decisions']} decisions; lambda after option 1 "
          f"{lam['after_partner_option1']['lambda']:.4f}, after option 2 {lam['after_partner_option2']['lambda']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

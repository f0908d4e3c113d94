"""The 144 Robinson-Goforth 2x2 games as registered games `rg144/<number>`, and five LLMs' recorded play of every
one of them (Akata et al., 2025), read and validated from the files shipped in tomarena/data/akata (its README
gives their provenance, MIT licence and citation).

Option 1 of a game (the row player's first row, the column player's first column) is action 0, labelled "A";
option 2 is action 1, "B". Payoffs are kept as recorded (ranks 1-4, asymmetric tables included; 15 of the
authors' tables repeat a rank for one player).
The fixed split holds out the 48 games with `number % 3 == 0` ("test"); the other 96 are "train".
The csv module only: importing the envs reads the 6 kB game table; the 36,000 recorded rounds are read (and
validated) on first use.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from itertools import accumulate
from typing import Literal

from tomarena.envs.games import GAMES, Game
from tomarena.errors import ConfigError

DATA = resources.files("tomarena") / "data" / "akata"
GAMES_FILE, ROUNDS_FILE = "games_144.csv", "all_games_rounds.csv"
CITATION = ("Akata, E., Schulz, L., Coda-Forno, J., Oh, S. J., Bethge, M. & Schulz, E. (2025). Playing repeated "
            "games with large language models. Nature Human Behaviour. arXiv:2305.16867.")
SOURCE = "github.com/eliaka/repeatedgames @ 224a605a21127cac69763f990e077f7b05abd422 (MIT, (c) 2024 Elif Akata)"
PREFIX = "rg144/"
LABELS = ("A", "B")
N_GAMES, N_ROUNDS = 144, 10
#: the recorded models: id in the files -> tomarena's short name (policies are `akata/<short name>`)
MODELS = {"act_gpt4": "gpt-4", "act_gpt35": "gpt-3.5", "act_claude2": "claude-2", "act_claude1": "claude-1",
          "act_llama2": "llama-2-70b-chat"}
FAMILIES = ("Win-win", "Biased", "Unfair", "Cyclic", "Second Best", "Tragic", "PD Family")
Split = Literal["train", "test", "all"]
SPLITS: tuple[Split, ...] = ("train", "test", "all")
ORDERS = {"[0, 1]": (0, 1), "[1, 0]": (1, 0)}
ROUND_COLUMNS = ("game_number", "game_name", "round", "player1", "player2", "answer1", "answer2", "points1",
                 "points2", "total1", "total2", "choice_option1", "choice_option2", "option_order")
GAME_COLUMNS = ("game_number", "game_row", "game_col", "game_name", "game_family",
                *(f"r{i}_c{j}_p{k}" for i in (1, 2) for j in (1, 2) for k in (1, 2)))


@dataclass(frozen=True)
class RGGame(Game):
    """A Robinson-Goforth game: a Game plus its number (1-144), its family and its cell (row, column) in the
    authors' 12 x 12 grid."""

    number: int = 0
    family: str = ""  # type: ignore[assignment]  # the Robinson-Goforth family, e.g. "PD Family"
    grid: tuple[int, int] = (0, 0)

    @property
    def split(self) -> Split:
        """"test" for the 48 held-out games (number divisible by 3), else "train"."""
        return split_of(self.number)


@dataclass(frozen=True)
class RecordedMatch:
    """One recorded match of 10 rounds: the game, the two models by seat (short names), the letters that stood for
    options 1 and 2, and per round both answers (letters), both actions (0 = option 1), both points and the order
    the question named the options in ((0, 1): option 1 first)."""

    game: int
    models: tuple[str, str]
    letters: tuple[str, str]
    answers: tuple[tuple[str, str], ...]
    actions: tuple[tuple[int, int], ...]
    points: tuple[tuple[float, float], ...]
    orders: tuple[tuple[int, int], ...]

    @property
    def game_id(self) -> str:
        """The registered game id, `rg144/<number>`."""
        return game_id(self.game)

    @property
    def split(self) -> Split:
        """The split of its game."""
        return split_of(self.game)


def game_id(number: int) -> str:
    """`rg144/<number>`."""
    return f"{PREFIX}{number}"


def split_of(number: int) -> Split:
    """"test" when `number % 3 == 0` (48 games), else "train" (96)."""
    return "test" if number % 3 == 0 else "train"


def in_split(number: int, split: Split) -> bool:
    """Whether game `number` belongs to `split` ("all" holds every game)."""
    return split == "all" or split_of(number) == split


def check_split(split: str) -> Split:
    """`split` when it is one of SPLITS, else a ConfigError naming them."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    return split  # type: ignore[return-value]


def check_model(model: str) -> str:
    """The short name of a recorded model (given short or as in the files), else a ConfigError naming them."""
    if model in MODELS:
        return MODELS[model]
    if model not in MODELS.values():
        raise ConfigError(f"unknown recorded model {model!r}; allowed: {', '.join(MODELS.values())}")
    return model


def _text(path: str | os.PathLike[str] | None, name: str) -> tuple[str, str]:
    """(the file's text, how errors name it): the file at `path`, or the shipped file `name`."""
    try:
        if path is None:
            return (DATA / name).read_text(encoding="utf-8"), name
        with open(path, encoding="utf-8", newline="") as fh:
            return fh.read(), str(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the Akata data file {path if path is not None else name}: {exc}") from exc


def _table(text: str, where: str, columns: Iterable[str], delimiter: str) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    missing = [c for c in columns if c not in (reader.fieldnames or ())]
    if missing:
        raise ConfigError(f"{where}: missing columns {', '.join(missing)}; needs {', '.join(columns)}")
    return list(reader)


def _number(row: dict[str, str], key: str, where: str) -> float:
    try:
        return float(row[key])
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {key}={row[key]!r} is not a number") from exc


def read_games(path: str | os.PathLike[str] | None = None) -> tuple[RGGame, ...]:
    """The 144 games of the game table (`path`, default the shipped games_144.csv), in number order; a ConfigError
    names the first broken line (numbers 1-144 once each, a known family, payoffs whole numbers 1-4)."""
    text, name = _text(path, GAMES_FILE)
    games = []
    for line, row in enumerate(_table(text, name, GAME_COLUMNS, ";"), start=2):
        where = f"{name} line {line}"
        if row["game_family"] not in FAMILIES:
            raise ConfigError(f"{where}: unknown family {row['game_family']!r}; allowed: {', '.join(FAMILIES)}")
        cell = [[[_number(row, f"r{i}_c{j}_p{k}", where) for k in (1, 2)] for j in (1, 2)] for i in (1, 2)]
        if any(x not in (1, 2, 3, 4) for r in cell for c in r for x in c):
            raise ConfigError(f"{where}: payoffs must be whole numbers 1-4, got {cell}")
        n = int(_number(row, "game_number", where))
        games.append(RGGame(game_id(n), row["game_name"], tuple(tuple((a, b) for a, b in r) for r in cell),
                            LABELS, ("rg144", f"rg144_{split_of(n)}", _slug(row["game_family"])),
                            f"Robinson-Goforth game {n} ({row['game_family']}), payoff ranks 1-4 (Akata et al.)",
                            number=n, family=row["game_family"],
                            grid=(int(_number(row, "game_row", where)), int(_number(row, "game_col", where)))))
    if sorted(g.number for g in games) != list(range(1, N_GAMES + 1)):
        raise ConfigError(f"{name}: needs games 1..{N_GAMES} once each, got {len(games)} rows")
    return tuple(sorted(games, key=lambda g: g.number))


def _slug(family: str) -> str:
    return family.lower().replace("-", "_").replace(" ", "_")


@cache
def rg144_games() -> tuple[RGGame, ...]:
    """The shipped 144 games, in number order (read once)."""
    return read_games()


def rg144_ids(split: Split = "all") -> list[str]:
    """The registered ids of the games of `split`, in number order."""
    return [g.id for g in rg144_games() if in_split(g.number, check_split(split))]


def read_recordings(path: str | os.PathLike[str] | None = None,
                    games_path: str | os.PathLike[str] | None = None) -> tuple[RecordedMatch, ...]:
    """Every recorded match of the rounds file (`path`, default the shipped all_games_rounds.csv), validated
    against the game table: all 144 games x 25 ordered pairs of the five models x rounds 1-10, each answer one of
    its match's two letters, every points and total as the payoff table gives (a ConfigError names the first
    problem). Matches in file order."""
    games = {g.number: g for g in (rg144_games() if games_path is None else read_games(games_path))}
    text, name = _text(path, ROUNDS_FILE)
    rows: dict[tuple[int, str, str], list[tuple[int, dict[str, str]]]] = {}
    for line, row in enumerate(_table(text, name, ROUND_COLUMNS, ","), start=2):
        where = f"{name} line {line}"
        n = int(_number(row, "game_number", where))
        if n not in games or row["game_name"] != games[n].name:
            raise ConfigError(f"{where}: game {row['game_number']} {row['game_name']!r} is not in the game table")
        for seat in ("player1", "player2"):
            if row[seat] not in MODELS:
                raise ConfigError(f"{where}: unknown {seat} {row[seat]!r}; allowed: {', '.join(MODELS)}")
        rows.setdefault((n, row["player1"], row["player2"]), []).append((line, row))
    matches = [_match(games[key[0]], key, found, name) for key, found in rows.items()]
    expected = N_GAMES * len(MODELS) ** 2
    if len(matches) != expected:
        raise ConfigError(f"{name}: needs {expected} matches (144 games x 25 ordered pairs), got {len(matches)}")
    return tuple(matches)


def _match(game: RGGame, key: tuple[int, str, str], found: list[tuple[int, dict[str, str]]],
           name: str) -> RecordedMatch:
    """One match's rows, checked: rounds 1-10 once each, one pair of letters, answers among them, points and
    totals as the payoff table gives."""
    found = sorted(found, key=lambda lr: lr[1]["round"].zfill(4))
    where = f"{name} game {key[0]} {key[1]} vs {key[2]}"
    if [r["round"] for _, r in found] != [str(k) for k in range(1, N_ROUNDS + 1)]:
        raise ConfigError(f"{where}: needs rounds 1..{N_ROUNDS} once each, got {[r['round'] for _, r in found]}")
    letters = (found[0][1]["choice_option1"], found[0][1]["choice_option2"])
    answers, actions, points, orders = [], [], [], []
    for line, r in found:
        at = f"{name} line {line}"
        if (r["choice_option1"], r["choice_option2"]) != letters or letters[0] == letters[1]:
            raise ConfigError(f"{at}: option letters {r['choice_option1']!r}/{r['choice_option2']!r} differ from "
                              f"the match's {letters[0]!r}/{letters[1]!r} (or from each other)")
        pair = (r["answer1"], r["answer2"])
        for seat, answer in enumerate(pair, start=1):
            if answer not in letters:
                raise ConfigError(f"{at}: answer{seat} {answer!r} is neither option letter {letters[0]!r} nor "
                                  f"{letters[1]!r}")
        joint = (letters.index(pair[0]), letters.index(pair[1]))
        got = (_number(r, "points1", at), _number(r, "points2", at))
        if got != game.payoff(joint):
            raise ConfigError(f"{at}: points {got[0]:g}/{got[1]:g} differ from the payoff table's "
                              f"{game.payoff(joint)[0]:g}/{game.payoff(joint)[1]:g} for options "
                              f"{joint[0] + 1}/{joint[1] + 1} of game {key[0]}")
        if r["option_order"] not in ORDERS:
            raise ConfigError(f"{at}: option_order {r['option_order']!r}; allowed: {', '.join(ORDERS)}")
        answers.append(pair)
        actions.append(joint)
        points.append(got)
        orders.append(ORDERS[r["option_order"]])
    for seat in (0, 1):
        totals = [_number(r, f"total{seat + 1}", f"{name} line {line}") for line, r in found]
        if totals != list(accumulate(p[seat] for p in points)):
            raise ConfigError(f"{where}: total{seat + 1} {totals} is not the running sum of points{seat + 1}")
    return RecordedMatch(key[0], (MODELS[key[1]], MODELS[key[2]]), letters, tuple(answers), tuple(actions),
                         tuple(points), tuple(orders))


@cache
def recordings() -> tuple[RecordedMatch, ...]:
    """The shipped recordings, read and validated once (3,600 matches, 72,000 decisions)."""
    return read_recordings()


def register_rg144() -> None:
    """Register the 144 games in GAMES (once; a second call changes nothing)."""
    for g in rg144_games():
        if not GAMES.registered(g.id):
            GAMES.register(g.id, g)


register_rg144()

"""The next-move benchmark: how well does a policy predict a recorded model's choices? Every recorded decision of
one model in one split of the Akata et al. recordings (tomarena.envs.rg144) is shown to the policy as the
Observation tomarena's env gives that seat of that game after the recorded history, and scored by the probability
the policy gives the recorded choice.

Driving: per policy, in chunks of SEATS_PER_CHUNK seats, round by round, one batched `act_batch` over the chunk's
seats (so a stateful policy keeps its own state across a match's rounds while the history it sees is always the
recorded one; rng streams per seat as in play; an LLM's prefix cache keeps each seat's last prompt). A Decision's
`probs` are used when given, else its action counts with probability 1.

Scores (`score`): accuracy = the share of decisions whose recorded choice has the highest probability (a tie
between k actions counts 1/k); log_likelihood = the mean natural log of the recorded choice's probability, clipped
at PROB_FLOOR; brier = the mean of (1 - p(recorded choice))^2 (the binary Brier score in 2x2 games); ece = expected
calibration error, |mean confidence - accuracy| over ten equal-width bins of the highest probability, weighted.

Baselines, computed from the recordings without the policy API: `option1` (always option 1), `repeat_own` (own
last choice; option 1 in round 1), `copy_partner` (the partner's last choice; option 1 in round 1) and `table`, a
lookup table over (dominant option, best reply to the partner's last choice, own last choice, partner's last
choice, joint-best option, maximin option) from the model's side, fitted on the model's train-split decisions:
p = add-one-smoothed frequencies per key, the model's overall train frequencies for unseen keys.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tomarena.agents.base import Policy
from tomarena.agents.resolve import resolve_policy
from tomarena.arena.episode import derive_seed, player_rng
from tomarena.arena.recorded import FRAMING, match_spec
from tomarena.envs.games import Game, get_game
from tomarena.envs.rg144 import N_ROUNDS, RecordedMatch, Split, check_model, check_split, in_split, recordings
from tomarena.envs.social_dilemma import Observation, SocialDilemmaEnv
from tomarena.errors import ConfigError

PROB_FLOOR = 1e-6
DATASETS = ("akata",)
BASELINES = ("option1", "repeat_own", "copy_partner", "table")
SCORE_COLUMNS = ["policy", "decisions", "accuracy", "log_likelihood", "brier", "ece", "kind", "seconds", "group"]
ECE_BINS = 10


@dataclass(frozen=True)
class Seat:
    """One seat of one recorded match: the model's 10 decisions there."""

    match: RecordedMatch
    seat: int

    @property
    def choices(self) -> tuple[int, ...]:
        """The recorded actions of this seat, round by round (0 = option 1)."""
        return tuple(joint[self.seat] for joint in self.match.actions)

    def last_moves(self, rnd: int) -> tuple[int, int]:
        """(own, partner's) recorded actions of the round before `rnd` (from 0); (-1, -1) in round 0."""
        if rnd == 0:
            return -1, -1
        joint = self.match.actions[rnd - 1]
        return joint[self.seat], joint[1 - self.seat]


def model_seats(model: str, split: Split = "test", matches: Iterable[RecordedMatch] | None = None) -> list[Seat]:
    """Every seat the recorded `model` held in the games of `split` (self-play: both seats), in file order."""
    model, split = check_model(model), check_split(split)
    return [Seat(m, s) for m in (recordings() if matches is None else matches) if in_split(m.game, split)
            for s in (0, 1) if m.models[s] == model]


def replay_observations(seat: Seat) -> list[Observation]:
    """The Observation of `seat` before each of the 10 rounds, from tomarena's env stepped through the recorded
    joint actions (the same game and history the model had, from its side)."""
    env = SocialDilemmaEnv(game=seat.match.game_id, framing=FRAMING, rounds=N_ROUNDS)
    env.reset(seed=0)
    out = []
    for joint in seat.match.actions:
        out.append(env.observe(seat.seat))
        env.step({"player_0": joint[0], "player_1": joint[1]})
    return out


def choices(seats: Sequence[Seat]) -> np.ndarray:
    """The recorded choices, shape (seats, rounds)."""
    return np.array([s.choices for s in seats], dtype=int).reshape(len(seats), N_ROUNDS)


def one_hot(actions: np.ndarray, n: int = 2) -> np.ndarray:
    """Probability 1 on each action: shape actions.shape + (n,)."""
    return np.eye(n)[np.asarray(actions, dtype=int)]


#: seats played through their 10 rounds together: one game's seats of a model (10), so an LLM backend's prefix
#: cache still holds each seat's previous prompt when its next round comes (a whole split at once would evict it)
SEATS_PER_CHUNK = 10


def policy_probs(policy: Policy, seats: Sequence[Seat], seed: int = 0,
                 seats_per_chunk: int = SEATS_PER_CHUNK) -> np.ndarray:
    """The probabilities `policy` gives each action at every recorded decision of `seats`, shape (seats, rounds,
    actions): per chunk of `seats_per_chunk` seats, one `act_batch` per round over the chunk, each seat carrying
    the policy's state from its last call."""
    out = np.zeros((len(seats), N_ROUNDS, 2))
    for start in range(0, len(seats), seats_per_chunk):
        chunk = seats[start:start + seats_per_chunk]
        observations = [replay_observations(s) for s in chunk]
        states = [policy.initial_state() for _ in chunk]
        rngs = [player_rng(derive_seed(seed, match_spec(s.match).match_key, 0), s.seat) for s in chunk]
        for rnd in range(N_ROUNDS):
            results = policy.act_batch([o[rnd] for o in observations], states, rngs)
            for i, (decision, state) in enumerate(results):
                states[i] = state
                out[start + i, rnd] = decision_probs(decision.probs, decision.action, 2, policy.id)
    return out


def decision_probs(probs: Sequence[float] | None, action: int, n: int, who: str) -> np.ndarray:
    """A Decision's probabilities, or probability 1 on its action when it gives none; checked to be n numbers."""
    if probs is None:
        return one_hot(np.array(action), n)
    p = np.asarray(probs, dtype=float)
    if p.shape != (n,) or not np.all(np.isfinite(p)) or np.any(p < 0) or abs(p.sum() - 1) > 1e-6:
        raise ConfigError(f"policy {who} gave probabilities {list(p)}; need {n} non-negative numbers summing to 1")
    return p


# -- baselines ---------------------------------------------------------------------------------------------------
def _own_side(game: Game, seat: int) -> tuple[np.ndarray, np.ndarray]:
    """(own, partner's) payoff matrices from `seat`'s side: rows = own action, columns = the partner's."""
    if seat == 0:
        return game.row_matrix, game.col_matrix
    return game.col_matrix.T, game.row_matrix.T


def static_features(game: Game, seat: int) -> tuple[int, tuple[int, int], int, int]:
    """From `seat`'s side of a 2x2 game: the strictly dominant option (-1: none), the best reply to each partner
    action, the own option of the cell with the highest joint payoff (first such cell) and the maximin option
    (first best)."""
    own, other = _own_side(game, seat)
    dominant = 0 if bool((own[0] > own[1]).all()) else 1 if bool((own[1] > own[0]).all()) else -1
    best_reply = (int(np.argmax(own[:, 0])), int(np.argmax(own[:, 1])))
    joint_best = int(np.unravel_index(int(np.argmax(own + other)), own.shape)[0])
    return dominant, best_reply, joint_best, int(np.argmax(own.min(axis=1)))


def table_keys(seats: Sequence[Seat]) -> list[list[tuple[int, ...]]]:
    """The lookup-table key of every decision of `seats`: (dominant option, best reply to the partner's last
    choice (-1 in round 1), own last choice, partner's last choice, joint-best option, maximin option)."""
    out = []
    for s in seats:
        dominant, best_reply, joint_best, maximin = static_features(get_game(s.match.game_id), s.seat)
        keys = []
        for rnd in range(N_ROUNDS):
            own, partner = s.last_moves(rnd)
            keys.append((dominant, best_reply[partner] if partner >= 0 else -1, own, partner, joint_best, maximin))
        out.append(keys)
    return out


@dataclass(frozen=True)
class LookupTable:
    """Counts of each choice per key, and overall, from the decisions it was fitted on."""

    counts: dict[tuple[int, ...], tuple[int, int]]
    total: tuple[int, int]

    def probs(self, key: tuple[int, ...]) -> tuple[float, float]:
        """Add-one-smoothed frequencies of the key's choices; the overall ones for a key never seen."""
        n0, n1 = self.counts.get(key, self.total)
        return (n0 + 1) / (n0 + n1 + 2), (n1 + 1) / (n0 + n1 + 2)


def fit_table(seats: Sequence[Seat]) -> LookupTable:
    """The lookup table of the decisions of `seats` (the model's training seats)."""
    counts: dict[tuple[int, ...], list[int]] = {}
    total = [0, 0]
    for keys, recorded in zip(table_keys(seats), choices(seats), strict=True):
        for key, c in zip(keys, recorded, strict=True):
            counts.setdefault(key, [0, 0])[c] += 1
            total[c] += 1
    return LookupTable({k: (v[0], v[1]) for k, v in counts.items()}, (total[0], total[1]))


def _last(seats: Sequence[Seat], who: int) -> np.ndarray:
    """Own (who=0) or partner's (who=1) last choices per decision, option 1 (0) in round 1."""
    return np.array([[max(s.last_moves(r)[who], 0) for r in range(N_ROUNDS)] for s in seats], dtype=int).reshape(
        len(seats), N_ROUNDS)


def baseline_probs(name: str, seats: Sequence[Seat], train: Sequence[Seat]) -> np.ndarray:
    """Probabilities of the baseline `name` (BASELINES) at every decision of `seats`, shape (seats, rounds, 2);
    `table` is fitted on `train`."""
    rules: dict[str, Callable[[], np.ndarray]] = {
        "option1": lambda: one_hot(np.zeros((len(seats), N_ROUNDS), dtype=int)),
        "repeat_own": lambda: one_hot(_last(seats, 0)),
        "copy_partner": lambda: one_hot(_last(seats, 1)),
        "table": lambda: _table_probs(fit_table(train), seats),
    }
    if name not in rules:
        raise ConfigError(f"unknown baseline {name!r}; allowed: {', '.join(BASELINES)}")
    return rules[name]()


def _table_probs(table: LookupTable, seats: Sequence[Seat]) -> np.ndarray:
    return np.array([[table.probs(k) for k in keys] for keys in table_keys(seats)], dtype=float).reshape(
        len(seats), N_ROUNDS, 2)


# -- scores ------------------------------------------------------------------------------------------------------
def score(probs: np.ndarray, recorded: np.ndarray) -> dict[str, float]:
    """Accuracy (ties between k best actions count 1/k), mean log-likelihood (clipped at PROB_FLOOR), Brier score
    and ECE of probabilities `probs` (..., actions) for the recorded choices `recorded` (...)."""
    p = np.asarray(probs, dtype=float).reshape(-1, np.shape(probs)[-1])
    y = np.asarray(recorded, dtype=int).reshape(-1)
    if len(y) == 0:
        raise ConfigError("no recorded decisions to score")
    p_rec = p[np.arange(len(y)), y]
    top = p.max(axis=1)
    best = p >= top[:, None] - 1e-12
    hit = np.where(best[np.arange(len(y)), y], 1.0 / best.sum(axis=1), 0.0)
    bins = np.minimum((top * ECE_BINS).astype(int), ECE_BINS - 1)
    ece = sum(abs(top[bins == b].mean() - hit[bins == b].mean()) * np.mean(bins == b)
              for b in range(ECE_BINS) if np.any(bins == b))
    return {"decisions": int(len(y)), "accuracy": float(hit.mean()),
            "log_likelihood": float(np.log(np.clip(p_rec, PROB_FLOOR, 1.0)).mean()),
            "brier": float(((1.0 - p_rec) ** 2).mean()), "ece": float(ece)}


def game_numbers(games: Iterable[str | int]) -> list[int]:
    """Robinson-Goforth game numbers from ids (`rg144/67`) or numbers (`67`); a ConfigError names a bad one."""
    out = []
    for g in games:
        text = str(g).strip().removeprefix("rg144/")
        if not text.isdigit() or not 1 <= int(text) <= 144:
            raise ConfigError(f"unknown recorded game {g!r}; allowed: rg144/1 .. rg144/144 (or 1 .. 144)")
        out.append(int(text))
    return out


#: ways to break the scores down: by round (the first round, where no history exists, vs the nine after it) and by
#: the game's Robinson-Goforth family
BREAKDOWNS = ("round", "family")


def decision_groups(seats: Sequence[Seat], by: str) -> np.ndarray:
    """The group label of every decision of `seats`, shape (seats, rounds): by "round" ("round 1" / "rounds 2-10")
    or by "family" (the game's family)."""
    if by == "round":
        return np.array([["round 1"] + ["rounds 2-10"] * (N_ROUNDS - 1) for _ in seats], dtype=object).reshape(
            len(seats), N_ROUNDS)
    if by == "family":
        return np.array([[get_game(s.match.game_id).family] * N_ROUNDS for s in seats], dtype=object).reshape(
            len(seats), N_ROUNDS)
    raise ConfigError(f"unknown breakdown {by!r}; allowed: {', '.join(BREAKDOWNS)}")


def evaluate(policies: Sequence[str | Policy], model: str, split: Split = "test", data: str = "akata",
             seed: int = 0, matches: Iterable[RecordedMatch] | None = None,
             games: Iterable[str | int] | None = None, by: str | None = None) -> list[dict[str, Any]]:
    """Score the baselines, then each policy (a spec or a Policy), on every recorded decision of `model` in
    `split` (only in `games`, when given); one row per policy with SCORE_COLUMNS (`kind` "baseline" or "policy",
    `seconds` its time, `group` "all"), followed with `by` (BREAKDOWNS) by one row per policy and group. The
    `table` baseline is always fitted on the whole train split of `matches`."""
    if data not in DATASETS:
        raise ConfigError(f"unknown benchmark data {data!r}; allowed: {', '.join(DATASETS)}")
    pool = list(recordings() if matches is None else matches)
    wanted = None if games is None else set(game_numbers(games))
    seats, train = model_seats(model, split, pool), model_seats(model, "train", pool)
    if wanted is not None:
        seats = [s for s in seats if s.match.game in wanted]
    if not seats:
        where = "" if wanted is None else f" among games {sorted(wanted)}"
        raise ConfigError(f"no recorded decisions of {check_model(model)} in split {split!r}{where}")
    recorded = choices(seats)
    groups = None if by is None else decision_groups(seats, by)
    rows, parts = [], []
    for name in BASELINES:
        started = time.perf_counter()
        probs = baseline_probs(name, seats, train)
        rows.append(_row(name, "baseline", probs, recorded, started))
        parts += _group_rows(name, "baseline", probs, recorded, groups)
    for spec in policies:
        started = time.perf_counter()
        policy = resolve_policy(spec)
        probs = policy_probs(policy, seats, seed)
        rows.append(_row(policy.id, "policy", probs, recorded, started))
        parts += _group_rows(policy.id, "policy", probs, recorded, groups)
    return rows + parts


def _row(name: str, kind: str, probs: np.ndarray, recorded: np.ndarray, started: float) -> dict[str, Any]:
    return {"policy": name, **score(probs, recorded), "kind": kind,
            "seconds": round(time.perf_counter() - started, 3), "group": "all"}


def _group_rows(name: str, kind: str, probs: np.ndarray, recorded: np.ndarray,
                groups: np.ndarray | None) -> list[dict[str, Any]]:
    """One score row per group of decisions (none without groups)."""
    if groups is None:
        return []
    return [{"policy": name, **score(probs[groups == g], recorded[groups == g]), "kind": kind, "seconds": 0.0,
             "group": str(g)} for g in sorted(set(groups.ravel()))]

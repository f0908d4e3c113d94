"""Akata et al.'s recorded play: the shipped data and its validation, the 144 games in the catalogue, the import as a
run directory, and the next-move benchmark (figures recomputed from the raw files)."""

from __future__ import annotations

import collections
import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tomarena
from tomarena.agents.base import Decision, Policy
from tomarena.app.cli import main
from tomarena.arena.benchmark import (
    BASELINES,
    baseline_probs,
    choices,
    evaluate,
    model_seats,
    policy_probs,
    replay_observations,
    score,
)
from tomarena.arena.store import RunStore
from tomarena.envs import GAMES, get_game
from tomarena.envs.rg144 import DATA, MODELS, read_games, read_recordings, recordings, rg144_games, rg144_ids
from tomarena.envs.scenarios import scenario_set
from tomarena.errors import ConfigError

RAW = Path(str(DATA / "all_games_rounds.csv"))


@pytest.fixture(scope="module")
def raw_rows() -> list[dict[str, str]]:
    with RAW.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_shipped_data_loads_and_validates() -> None:
    matches = recordings()
    assert len(matches) == 3600 and sum(2 * len(m.actions) for m in matches) == 72_000
    per_model = collections.Counter(model for m in matches for model in m.models)
    assert set(per_model) == set(MODELS.values()) and set(per_model.values()) == {1440}  # 14,400 decisions each
    assert {(m.game, m.models) for m in matches} == {(g, (a, b)) for g in range(1, 145) for a in MODELS.values()
                                                     for b in MODELS.values()}


def test_rg144_games_in_the_catalogue() -> None:
    games = rg144_games()
    assert len(games) == 144 and len(rg144_ids("test")) == 48 and len(rg144_ids("train")) == 96
    pd_game = get_game("rg144/67")
    assert pd_game is GAMES.get("rg144/67") and pd_game.name == "Prisoners’ Dilemma"
    assert pd_game.family == "PD Family" and pd_game.number == 67 and pd_game.action_labels == ("A", "B")
    assert pd_game.rstp == {"R": 3, "S": 1, "T": 4, "P": 2} and pd_game.pure_equilibria() == [(1, 1)]
    asym = get_game("rg144/1")  # Hegemony: asymmetric, kept as recorded
    assert not asym.is_symmetric and asym.payoff((1, 0)) == (4.0, 2.0) and asym.payoff((0, 0)) == (3.0, 4.0)
    held_out = collections.Counter(g.family for g in games if g.split == "test")
    assert held_out == {"Win-win": 12, "Biased": 14, "Unfair": 7, "Cyclic": 6, "Second Best": 4, "Tragic": 4,
                        "PD Family": 1}
    assert scenario_set("rg144_test") == (rg144_ids("test"), ["none"]) and len(scenario_set("rg144")[0]) == 144


@pytest.mark.parametrize(("column", "value", "message"), [
    ("answer2", "Q", "answer2 'Q' is neither option letter"),
    ("points1", "9", "differ from the payoff table's"),
    ("round", "11", "needs rounds 1..10 once each"),
    ("player1", "act_gpt5", "unknown player1 'act_gpt5'"),
])
def test_a_broken_rounds_file_is_refused(tmp_path: Path, raw_rows: list[dict[str, str]], column: str, value: str,
                                         message: str) -> None:
    rows = [dict(r) for r in raw_rows]
    rows[1234][column] = value
    path = tmp_path / "rounds.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(ConfigError, match=message) as err:
        read_recordings(path)
    assert "\n" not in str(err.value)


def test_a_broken_game_table_is_refused(tmp_path: Path) -> None:
    text = (DATA / "games_144.csv").read_text(encoding="utf-8")
    (tmp_path / "bad.csv").write_text(text.replace(";PD Family;", ";Defect Family;", 1), encoding="utf-8")
    with pytest.raises(ConfigError, match="line 65: unknown family 'Defect Family'"):
        read_games(tmp_path / "bad.csv")
    (tmp_path / "short.csv").write_text("\n".join(text.splitlines()[:-1]), encoding="utf-8")
    with pytest.raises(ConfigError, match="needs games 1..144 once each"):
        read_games(tmp_path / "short.csv")


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("akata") / "run"
    assert main(["import", "akata", "--out", str(out)]) == 0
    return out


def test_import_writes_every_decision_with_the_recorded_payoffs(imported: Path,
                                                                 raw_rows: list[dict[str, str]]) -> None:
    summary = json.loads((imported / "summary.json").read_text())
    assert summary["rows"] == 72_000 and summary["episodes"] == 3600
    frame = RunStore(imported).read_frame()
    assert len(frame) == 72_000 and set(frame["round"]) == set(range(10)) and (frame["source"] == "replay").all()
    sums: dict[str, float] = collections.defaultdict(float)
    counts: collections.Counter[str] = collections.Counter()
    for r in raw_rows:
        for k in "12":
            sums[MODELS[r[f"player{k}"]]] += float(r[f"points{k}"])
            counts[MODELS[r[f"player{k}"]]] += 1
    with open(imported / "standings.csv", encoding="utf-8") as fh:
        standings = {row["policy"]: row for row in csv.DictReader(fh)}
    assert set(standings) == {f"akata/{m}" for m in MODELS.values()}
    for model, total in sums.items():
        row = standings[f"akata/{model}"]
        assert int(row["rounds_played"]) == counts[model] == 14_400
        assert float(row["mean_payoff_per_round"]) == pytest.approx(total / counts[model], abs=1e-9)
    # one recorded round, field by field: game 67, GPT-4 (player 1) against Claude 2, round 4
    rec = next(r for r in raw_rows if (r["game_number"], r["player1"], r["player2"], r["round"]) == (
        "67", "act_gpt4", "act_claude2", "4"))
    ep = frame[frame["episode_id"] == "akata/gpt-4,akata/claude-2 | rg144/67 | none#0"]
    row = ep[(ep["round"] == 3) & (ep["agent"] == "player_0")].iloc[0]
    assert row["completion"] == rec["answer1"] and row["reward"] == float(rec["points1"])
    assert row["action"] == (0 if rec["answer1"] == rec["choice_option1"] else 1)
    assert row["cumulative_reward"] == float(rec["total1"]) and row["opponents"] == "akata/claude-2"
    shown = json.loads(row["prompt"])[0]["content"]
    first = rec["choice_option1"] if rec["option_order"] == "[0, 1]" else rec["choice_option2"]
    assert shown.startswith("Round 4 of 10. Option " + first)


def test_imported_run_exports_traces(imported: Path, tmp_path: Path) -> None:
    out = tmp_path / "gpt4.jsonl"
    assert main(["traces", "export", str(imported), "--policy", "akata/gpt-4", "--out", str(out), "--games",
                 "rg144/67"]) == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 100 and {x["action_labels"] == ["A", "B"] for x in lines} == {True}
    # recorded play becomes tomarena's own letter prompt for that game and history -> the recorded letter
    frame = RunStore(imported).read_frame()
    for ex in lines:
        assert ex["messages"][:-1] == ex["letter_messages"] and ex["policy"] == "akata/gpt-4"
        row = frame[(frame["episode_id"] == ex["episode_id"]) & (frame["round"] == ex["round"])
                    & (frame["agent"] == ex["agent"])].iloc[0]
        assert ex["messages"][-1] == {"role": "assistant", "content": "AB"[int(row["action"])]}
        assert ex["teacher_probs"] == [1.0 - row["action"], float(row["action"])]
        user = ex["letter_messages"][1]["content"]
        assert f"This is round {ex['round'] + 1}." in user or ex["round"] == 0
        assert "A or B" in user and "C or D" not in user
    # an existing file is refused unless --force; --sample keeps a seeded random subset
    assert main(["traces", "export", str(imported), "--policy", "akata/gpt-4", "--out", str(out)]) == 2
    assert main(["traces", "export", str(imported), "--policy", "akata/gpt-4", "--out", str(out), "--games",
                 "rg144/67", "--sample", "7", "--seed", "1", "--force"]) == 0
    sampled = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(sampled) == 7 and all(x in lines for x in sampled) and len({json.dumps(x) for x in sampled}) == 7
    # a scenario set stands for its games: the held-out split's 48 games, GPT-4's 4,800 decisions there
    assert main(["traces", "export", str(imported), "--policy", "akata/gpt-4", "--out", str(out), "--games",
                 "rg144_test", "--force"]) == 0
    held_out = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(held_out) == 4800 and {int(x["game"].split("/")[1]) % 3 for x in held_out} == {0}


def test_baselines_and_classic_policies_reproduce_the_raw_figures() -> None:
    rows = {r["policy"]: r for r in evaluate(["classic/always_cooperate", "classic/tit_for_tat",
                                              "classic/random?p=0.5"], "gpt-4", "test")}
    assert [r for r in rows if rows[r]["kind"] == "baseline"] == list(BASELINES)
    assert {r["decisions"] for r in rows.values()} == {4800}
    acc = {k: round(r["accuracy"], 4) for k, r in rows.items()}
    assert acc == {"option1": 0.7369, "repeat_own": 0.7865, "copy_partner": 0.6400, "table": 0.8030,
                   "classic/always_cooperate": 0.7369, "classic/tit_for_tat": 0.6400, "classic/random?p=0.5": 0.5}
    assert rows["option1"]["accuracy"] == 3537 / 4800 and rows["repeat_own"]["accuracy"] == 3775 / 4800
    assert rows["classic/random?p=0.5"]["log_likelihood"] == pytest.approx(np.log(0.5))
    assert rows["option1"]["log_likelihood"] == pytest.approx((1 - 3537 / 4800) * np.log(1e-6))
    assert rows["table"]["log_likelihood"] > -0.5 and rows["table"]["ece"] < 0.05


def test_baselines_recomputed_from_the_raw_file(raw_rows: list[dict[str, str]]) -> None:
    """option1, repeat_own and copy_partner straight from the CSV, for GPT-4's held-out decisions."""
    matches = collections.defaultdict(list)
    for r in raw_rows:
        matches[(r["game_number"], r["player1"], r["player2"])].append(r)
    hits = collections.Counter()
    for (game, p1, p2), rounds in matches.items():
        if int(game) % 3:
            continue
        rounds.sort(key=lambda r: int(r["round"]))
        for k, own, partner in (("1", p1, "2"), ("2", p2, "1")):
            if own != "act_gpt4":
                continue
            opt = [[r[f"answer{x}"] == r["choice_option1"] for x in (k, partner)] for r in rounds]
            for t, (mine, _) in enumerate(opt):
                before = opt[t - 1] if t else [True, True]
                hits["n"] += 1
                hits["option1"] += mine
                hits["repeat_own"] += mine == before[0]
                hits["copy_partner"] += mine == before[1]
    assert hits["n"] == 4800
    assert (hits["option1"], hits["repeat_own"], hits["copy_partner"]) == (3537, 3775, 3072)


class _Oracle(Policy):
    """Answers each seat's recorded choice, relying on the benchmark's order (seats in order, in chunks each played
    round by round, one batch per round), and checks that the observation it is shown carries the recorded
    history."""

    id = "oracle"

    def __init__(self, seats: Sequence[Any]) -> None:
        self.seats, self.offset = seats, 0

    def act(self, obs: Any, state: Any, rng: Any) -> tuple[Decision, Any]:
        raise AssertionError("the benchmark decides in batches")

    def act_batch(self, observations: Sequence[Any], states: Sequence[Any], rngs: Sequence[Any]) -> list:
        out = []
        chunk = self.seats[self.offset:self.offset + len(observations)]
        if observations[0].round == 9:  # the chunk's last round: the next call starts the next chunk
            self.offset += len(observations)
        for seat, obs, state in zip(chunk, observations, states, strict=True):
            rnd = obs.round
            assert obs.actions == seat.match.actions[:rnd] and obs.player == seat.seat
            assert state == rnd  # its own state is carried from round to round
            out.append((Decision(seat.choices[rnd], (1.0 - seat.choices[rnd], float(seat.choices[rnd]))), rnd + 1))
        return out

    def initial_state(self) -> int:
        return 0


def test_benchmark_shows_the_recorded_history_and_an_oracle_scores_one() -> None:
    seats = model_seats("gpt-4", "all")
    assert len(seats) == 1440
    for s in seats:
        for rnd, obs in enumerate(replay_observations(s)):
            assert obs.game.id == s.match.game_id and obs.player == s.seat and obs.round == rnd
            assert obs.actions == s.match.actions[:rnd] and obs.payoffs == s.match.points[:rnd]
            assert obs.horizon == 10 and obs.framing.id == "none"
    test_seats = model_seats("gpt-4", "test")
    probs = policy_probs(_Oracle(test_seats), test_seats)
    result = score(probs, np.array([s.choices for s in test_seats]))
    assert result == {"decisions": 4800, "accuracy": 1.0, "log_likelihood": 0.0, "brier": 0.0, "ece": 0.0}


def test_score_counts_ties_by_half_and_clips_probabilities() -> None:
    probs = np.array([[0.5, 0.5], [1.0, 0.0], [0.2, 0.8]])
    got = score(probs, np.array([0, 1, 1]))
    assert got["accuracy"] == pytest.approx(1.5 / 3)
    assert got["log_likelihood"] == pytest.approx((np.log(0.5) + np.log(1e-6) + np.log(0.8)) / 3)


def test_bad_input_is_one_line_with_status_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["import", "foo", "--out", str(tmp_path / "x")])
    assert exc.value.code == 2 and "invalid choice: 'foo'" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    assert main(["import", "akata", "--out", str(tmp_path / "full")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not an empty directory" in err
    assert main(["evaluate", "--policies", "classic/nope", "--model", "gpt-4"]) == 2
    assert "unknown policy 'classic/nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--model", "gpt-5"])
    assert exc.value.code == 2


def test_evaluate_cli_writes_the_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "scores.csv"
    assert main(["evaluate", "--policies", "classic/tit_for_tat", "--data", "akata", "--model", "llama-2-70b-chat",
                 "--split", "test", "--csv", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0])[:4] == ["policy", "decisions", "accuracy", "log_likelihood"]
    assert [r["policy"] for r in rows] == [*BASELINES, "classic/tit_for_tat"]
    assert float(rows[1]["accuracy"]) == pytest.approx(0.9815, abs=5e-5)
    assert "4800 recorded decisions" in capsys.readouterr().out


def test_a_tournament_runs_on_rg144_games() -> None:
    res = tomarena.tournament(["classic/tit_for_tat", "classic/always_defect"], games=["rg144/67", "rg144/1"],
                              rounds=3)
    assert set(res.standings["policy"]) == {"classic/tit_for_tat", "classic/always_defect"}
    assert set(res.traces["action_label"]) <= {"A", "B"}


def test_evaluate_on_chosen_games_keeps_the_table_fitted_on_the_whole_train_split() -> None:
    """--games restricts the scored decisions only: the table baseline on game 66 equals its slice of the full run."""
    some = {r["policy"]: r for r in evaluate([], "gpt-4", "test", games=["rg144/66", "3"])}
    assert some["option1"]["decisions"] == 200
    seats = [s for s in model_seats("gpt-4", "test") if s.match.game in (3, 66)]
    full = baseline_probs("table", seats, model_seats("gpt-4", "train"))
    assert some["table"]["accuracy"] == pytest.approx(score(full, choices(seats))["accuracy"], abs=1e-12)
    with pytest.raises(ConfigError, match="unknown recorded game 'rg144/145'"):
        evaluate([], "gpt-4", "test", games=["rg144/145"])
    with pytest.raises(ConfigError, match=r"in split 'test' among games \[67\]"):
        evaluate([], "gpt-4", "test", games=[67])


def test_scores_break_down_by_round_and_family() -> None:
    """Round 1 has no history: repeat_own and copy_partner answer option 1 there, exactly as option1 does."""
    rows = evaluate([], "gpt-4", "test", by="round")
    got = {(r["policy"], r["group"]): r for r in rows}
    assert got[("option1", "all")]["decisions"] == 4800
    assert got[("option1", "round 1")]["decisions"] == 480 and got[("option1", "rounds 2-10")]["decisions"] == 4320
    for name in ("repeat_own", "copy_partner"):
        assert got[(name, "round 1")]["accuracy"] == got[("option1", "round 1")]["accuracy"]
    whole = got[("repeat_own", "all")]["accuracy"]
    parts = got[("repeat_own", "round 1")]["accuracy"] * 480 + got[("repeat_own", "rounds 2-10")]["accuracy"] * 4320
    assert parts / 4800 == pytest.approx(whole, abs=1e-12) == pytest.approx(0.7865, abs=5e-5)
    fam = [r for r in evaluate([], "gpt-4", "test", by="family") if r["policy"] == "option1" and r["group"] != "all"]
    assert sum(r["decisions"] for r in fam) == 4800 and {r["group"] for r in fam} >= {"PD Family", "Win-win"}
    with pytest.raises(ConfigError, match="unknown breakdown 'moon'; allowed: round, family"):
        evaluate([], "gpt-4", "test", by="moon")

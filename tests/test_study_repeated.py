"""`study/llama2-70b` in repeated rounds follows LLaMa-2-70b-chat's recorded repeated play (issue 23, item 6): the fit
shipped in tomarena/data/study/llama2_repeated_fit.json is what re-fitting the Akata recordings gives, its counts are
those of the raw file, and the replay's decisions carry exactly the documented probabilities."""

from __future__ import annotations

import csv
from collections import Counter, defaultdict

import numpy as np
import pytest

from tomarena import study
from tomarena.agents.resolve import resolve_policy
from tomarena.agents.strategies import study_fit
from tomarena.agents.strategies.study import StudyReplay, follow_recorded, policy_summary, reciprocity
from tomarena.app.catalog import listing
from tomarena.arena.episode import MatchSpec, play_episode
from tomarena.errors import ConfigError

try:
    CSV = study_fit.rounds_path()
except ConfigError:  # neither the packaged nor the shared copy of the recordings is here
    CSV = None
needs_csv = pytest.mark.skipif(CSV is None, reason="Akata recordings (all_games_rounds.csv) not available")


def _opt(row: dict[str, str], column: str) -> int:
    return 1 if row[column] == row["choice_option1"] else 2


def _raw_llama2() -> list[tuple[str, int, int | None, int | None]]:
    """(game, choice, own last, partner's last) of act_llama2, 1 = option 1, read plainly from the raw file."""
    rounds: dict[tuple[str, str, str], dict[int, dict[str, str]]] = defaultdict(dict)
    with open(CSV, encoding="utf-8", newline="") as fh:
        for r in csv.DictReader(fh):
            rounds[(r["game_number"], r["player1"], r["player2"])][int(r["round"])] = r
    out = []
    for (game, p1, p2), by_round in rounds.items():
        for me, other, model in (("answer1", "answer2", p1), ("answer2", "answer1", p2)):
            if model != "act_llama2":
                continue
            for k in range(1, 11):
                prev = by_round.get(k - 1)
                out.append((game, _opt(by_round[k], me), prev and _opt(prev, me), prev and _opt(prev, other)))
    return out


@needs_csv
def test_fitted_table_counts_are_the_raw_files() -> None:
    rows = _raw_llama2()
    assert len(rows) == 14_400
    counts = Counter((o, x, c) for _, c, o, x in rows)
    expected = {(None, None): (1431, 1440), (1, 1): (8547, 8658), (1, 2): (3256, 3387), (2, 1): (25, 484),
                (2, 2): (89, 431)}
    got = {k: (counts[(*k, 1)], counts[(*k, 1)] + counts[(*k, 2)]) for k in expected}
    assert got == expected
    shipped = {(c["own_last"], c["partner_last"]): (c["n_option1"], c["n"]) for c in study_fit.load_fit()["table"]}
    assert shipped == expected
    assert [c["p_option1"] for c in study_fit.load_fit()["table"]] == [k / n for k, n in expected.values()]


@needs_csv
def test_persistence_is_the_within_game_least_squares_fit() -> None:
    later = [(g, c == 1, o == 1, x) for g, c, o, x in _raw_llama2() if o is not None]
    level = {g: np.mean([y for gg, y, _, _ in later if gg == g]) for g in {g for g, *_ in later}}
    for x, lam in zip((1, 2), study_fit.persistence()):
        rows = np.array([(y - level[g], o - level[g]) for g, y, o, xx in later if xx == x])
        assert lam == pytest.approx((rows[:, 0] @ rows[:, 1]) / (rows[:, 1] @ rows[:, 1]), abs=1e-12)
    assert study_fit.persistence() == pytest.approx((0.6930504956, 0.4480553280))


@needs_csv
def test_refitting_reproduces_the_shipped_json(tmp_path) -> None:
    assert study_fit.fit() == study_fit.load_fit()
    out = tmp_path / "fit.json"
    assert study_fit.main(["--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == study_fit.FIT_FILE.read_text(encoding="utf-8")


def test_shipped_fit_names_its_data() -> None:
    data = study_fit.load_fit()["data"]
    assert data["decisions"] == 14_400 and data["games"] == 144 and data["model"] == "act_llama2"
    assert "224a605a21127cac69763f990e077f7b05abd422" in data["source"] and data["file"].endswith("rounds.csv")
    assert sum(p["decisions"] for p in study_fit.load_fit()["persistence"].values()) == 14_400 - 1440


def test_the_documentation_states_the_fitted_values() -> None:
    lam_c, lam_d = study_fit.persistence()
    for text in (StudyReplay.__doc__, policy_summary("llama2-70b"), policy_summary("llama2-70b-letter")):
        assert f"{lam_c:.3f}" in text and f"{lam_d:.3f}" in text
    rows = {r["id"]: r for r in listing("policies")}
    assert "only on the study's 52 one-shot scenarios" in rows["study/llama2-70b"]["summary"]
    assert "12,960 decisions" in rows["study/llama2-70b"]["summary"]
    assert "reciprocity; assumed, no data" in rows["study/llama2-7b"]["summary"]


def _match(policy: str, co_player: str, framing: str = "business", rounds: int = 10, seed: int = 0) -> list[dict]:
    rows = play_episode(MatchSpec((policy, co_player), "prisoners_dilemma", framing, 0, rounds),
                        {p: resolve_policy(p) for p in (policy, co_player)}, seed)
    return [r for r in rows if r["agent"] == "player_0"]


@pytest.mark.parametrize("model", ["llama2-70b", "llama2-70b-letter"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_versus_always_defect_follows_the_fitted_persistence(model: str, seed: int) -> None:
    p0 = study.cell(model, "business", "prisoners_dilemma").p_cooperate()
    lam_d = study_fit.persistence()[1]
    mine = _match(f"study/{model}", "classic/always_defect", seed=seed)
    assert len(mine) == 10 and {r["source"] for r in mine} == {"replay-model"}
    assert mine[0]["p_cooperate"] == p0  # round 0: the recorded one-shot anchor
    for prev, r in zip(mine, mine[1:]):
        # the co-player's last was D: P(C) = p0 + lambda_D * (own last C - p0); p0 + lambda_D (1 - p0) after own C,
        # p0 (1 - lambda_D) after own D
        own_c = prev["action"] == 0
        assert r["p_cooperate"] == p0 + lam_d * (float(own_c) - p0)
        assert r["p_cooperate"] == pytest.approx(p0 + lam_d * (1 - p0) if own_c else p0 * (1 - lam_d), abs=1e-15)


def test_versus_always_cooperate_uses_lambda_after_c_and_the_students_keep_reciprocity() -> None:
    p0 = study.cell("llama2-70b", "team", "prisoners_dilemma").p_cooperate()
    lam_c = study_fit.persistence()[0]
    mine = _match("study/llama2-70b", "classic/always_cooperate", "team")
    for prev, r in zip(mine, mine[1:]):
        assert r["p_cooperate"] == follow_recorded(p0, prev["action"] == 0, True)
        assert r["p_cooperate"] == p0 + lam_c * (float(prev["action"] == 0) - p0)
    for spec, model in (("study/llama2-7b", "llama2-7b"), ("study/llama2-70b?repeated=reciprocity", "llama2-70b")):
        q0 = study.cell(model, "team", "prisoners_dilemma").p_cooperate()
        student = _match(spec, "classic/always_cooperate", "team", rounds=4)
        assert [r["p_cooperate"] for r in student] == [reciprocity(q0, np.ones(k), 0.5, 1.0) for k in range(4)]


def test_one_shot_scenarios_stay_recorded_and_bad_options_are_one_line() -> None:
    c = study.cell("llama2-70b", "business", "prisoners_dilemma")
    (only,) = _match("study/llama2-70b", "classic/always_defect", rounds=1)
    assert only["source"] == "replay" and only["p_cooperate"] == c.n_cooperate / c.n_total
    with pytest.raises(ConfigError, match="^unknown repeated model 'markov'; allowed: akata, reciprocity$"):
        resolve_policy("study/llama2-70b?repeated=markov")
    assert resolve_policy("study/llama2-70b").describe()["repeated"] == "akata"
    assert resolve_policy("study/llama2-7b-lora").describe()["repeated"] == "reciprocity"


def test_study_family_is_the_games_declared_family() -> None:
    from types import SimpleNamespace

    from tomarena.agents.strategies.study import game_family
    from tomarena.envs import get_game

    assert game_family(get_game("stag_hunt_doubled")) == "stag_hunt"
    assert game_family(get_game("donation")) is None
    assert game_family(SimpleNamespace(family="PD Family")) is None  # a Robinson-Goforth family is not the study's


def test_play_prints_each_decisions_source(capsys: pytest.CaptureFixture[str]) -> None:
    from tomarena.app.cli import main

    assert main(["play", "study/llama2-70b", "classic/always_defect", "--framing", "business", "--rounds", "3"]) == 0
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("round ")]
    assert len(lines) == 6 and all(x.endswith("[replay-model]") for x in lines[::2])
    assert all(x.endswith("[rule]") for x in lines[1::2])
    assert main(["play", "study/llama2-70b", "classic/always_defect", "--framing", "business", "--rounds", "1"]) == 0
    assert "p(C)=0.313  [replay]" in capsys.readouterr().out

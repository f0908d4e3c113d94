"""Arena: the pure episode function, seeds, tournaments, the trace store, resume, export and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from tomarena.agents.resolve import resolve_policy
from tomarena.app.api import run_config as run
from tomarena.arena.config import RunConfig, build_specs, validate_config
from tomarena.arena.episode import MatchSpec, derive_seed, play_episode, play_episodes
from tomarena.arena.store import RunStore
from tomarena.errors import ConfigError, TomarenaError

CLASSICS = ["classic/always_cooperate", "classic/always_defect", "classic/tit_for_tat", "classic/grim_trigger",
            "classic/win_stay_lose_shift"]
TOMARENA = [sys.executable, "-m", "tomarena.app.cli"]


def _pols(labels):
    return {p: resolve_policy(p) for p in labels}


def test_seed_depends_only_on_run_seed_match_and_repetition():
    a = derive_seed(1, "x | pd | none", 0)
    assert a == derive_seed(1, "x | pd | none", 0)
    assert len({a, derive_seed(2, "x | pd | none", 0), derive_seed(1, "y | pd | none", 0),
                derive_seed(1, "x | pd | none", 1)}) == 4


def test_batched_episodes_equal_one_by_one_and_any_order():
    pols = _pols(["classic/random?p=0.5", "classic/tit_for_tat"])
    specs = [MatchSpec(("classic/random?p=0.5", "classic/tit_for_tat"), "stag_hunt", f, r, 6)
             for f in ("business", "team") for r in range(3)]
    batched = play_episodes(specs, pols, run_seed=11)
    reversed_batch = play_episodes(specs[::-1], pols, run_seed=11)
    for s in specs:
        assert batched[s.episode_id] == play_episode(s, pols, run_seed=11) == reversed_batch[s.episode_id]


def test_tit_for_tat_mirrors_and_rewards_are_raw_payoffs():
    rows = play_episode(MatchSpec(("classic/tit_for_tat", "classic/always_defect"), "prisoners_dilemma", "none", 0,
                                  3), _pols(["classic/tit_for_tat", "classic/always_defect"]), 0)
    tft = [r for r in rows if r["agent"] == "player_0"]
    assert [r["action_label"] for r in tft] == ["C", "D", "D"]
    assert [r["reward"] for r in tft] == [2.0, 3.0, 3.0]  # study PD: S=2, then P=3
    assert tft[-1]["cumulative_reward"] == 8.0


def _expected_axelrod_200() -> dict[tuple[str, str], float]:
    """Hand-computed mean payoff per round on the Axelrod PD (R=3,S=0,T=5,P=1) over 200 rounds."""
    allc, alld, tft, grim, wsls = CLASSICS
    coop = {(a, b): 3.0 for a in (allc, tft, grim, wsls) for b in (allc, tft, grim, wsls)}
    exp = dict(coop)
    for nice in (tft, grim):  # C once, then D forever against always_defect
        exp[(nice, alld)], exp[(alld, nice)] = (0 + 199 * 1) / 200, (5 + 199 * 1) / 200
    exp[(allc, alld)], exp[(alld, allc)] = 0.0, 5.0
    exp[(wsls, alld)], exp[(alld, wsls)] = 0.5, 3.0  # Pavlov alternates C, D against always_defect
    exp[(alld, alld)] = 1.0
    return exp


def test_crossplay_equals_hand_computed_versus_tables(tmp_path):
    cfg = validate_config({"policies": CLASSICS, "games": ["prisoners_dilemma_axelrod"], "rounds": 200})
    out = run(cfg, tmp_path / "run", progress=False)
    cross = pd.read_csv(out / "crossplay.csv")
    got = {(r.policy, r.opponent): r.mean_payoff_per_round for r in cross.itertuples()}
    assert got == pytest.approx(_expected_axelrod_200())
    standings = pd.read_csv(out / "standings.csv")
    assert list(standings.columns) == ["policy", "games_played", "rounds_played", "mean_payoff_per_round",
                                       "cooperation_rate"]
    assert set(standings["games_played"]) == {4 + 1}  # 4 opponents + one self-play match


def test_specs_round_robin_with_and_without_self_play():
    base = {"policies": ["classic/always_cooperate", "classic/always_defect", "classic/tit_for_tat"],
            "repetitions": 2}
    assert len(build_specs(RunConfig(**base), {"prisoners_dilemma": 2})) == 6 * 2
    assert len(build_specs(RunConfig(**base, self_play=False), {"prisoners_dilemma": 2})) == 3 * 2
    sweep = RunConfig(kind="sweep", policies=["a", "b"], games=["stag_hunt"], framings=["ir", "team"], samples=3)
    assert len(build_specs(sweep, {"stag_hunt": 2})) == 2 * 2 * 3


def test_resume_skips_complete_episodes_and_never_duplicates(tmp_path):
    cfg = validate_config({"policies": CLASSICS[:3] + ["classic/random?p=0.4"], "rounds": 5, "repetitions": 3,
                           "chunk_size": 4, "seed": 5})
    full = run(cfg, tmp_path / "full", progress=False)
    partial = tmp_path / "partial"
    run(cfg, partial, progress=False)
    shards = sorted((partial / "traces").glob("part-*.parquet"))
    for s in shards[len(shards) // 2:]:
        s.unlink()  # as if killed after half the shards
    (partial / "traces" / ".part-x.parquet.tmp").write_bytes(b"half a file")  # a torn write is never read
    run(cfg, partial, resume=True, progress=False)
    a, b = RunStore(full).read_frame(), RunStore(partial).read_frame()
    assert not b.duplicated(["episode_id", "round", "agent"]).any()
    cols = [c for c in a.columns if c != "run_id"]
    pd.testing.assert_frame_equal(a[cols].reset_index(drop=True), b[cols].reset_index(drop=True))


def test_store_says_whether_a_run_is_complete_or_resumable(tmp_path):
    store = RunStore(tmp_path / "r")
    assert (store.complete(), store.resumable()) == (False, False)  # no directory yet
    run(validate_config({"policies": CLASSICS[:2], "rounds": 2, "chunk_size": 1}), store.root, progress=False)
    assert (store.complete(), store.resumable()) == (True, True)
    (store.root / "summary.json").unlink()  # as if killed before the end
    assert (store.complete(), store.resumable()) == (False, True)
    for shard in store.shard_paths():
        shard.unlink()  # killed before its first shard: nothing a resume would keep
    assert (store.complete(), store.resumable()) == (False, False)
    (store.traces / "part-x.parquet").write_bytes(b"")
    (store.root / "manifest.json").unlink()  # shards without a manifest are no run
    assert (store.complete(), store.resumable()) == (False, False)


def test_existing_run_needs_resume_and_same_config(tmp_path):
    cfg = validate_config({"policies": CLASSICS[:2], "rounds": 2})
    run(cfg, tmp_path / "r", progress=False)
    before = sorted(p.name for p in (tmp_path / "r" / "traces").iterdir())
    with pytest.raises(ConfigError, match="--resume"):
        run(cfg, tmp_path / "r", progress=False)
    with pytest.raises(ConfigError, match="different config"):
        run(validate_config({"policies": CLASSICS[:2], "rounds": 3}), tmp_path / "r", resume=True, progress=False)
    assert sorted(p.name for p in (tmp_path / "r" / "traces").iterdir()) == before


@pytest.mark.parametrize("bad, message", [
    ({"policies": ["classic/tit_for_tat"], "rounds": 0}, "rounds"),
    ({"policies": ["classic/tit_for_tat"], "continuation": 1.0}, "continuation"),
    ({"policies": ["classic/tit_for_tat"], "games": ["prisoners_dillema"]}, "did you mean prisoners_dilemma"),
    ({"policies": ["classic/tit_for_tat"], "framings": ["buisness"]}, "did you mean business"),
    ({"policies": ["classic/tit_for_tat"], "roundz": 3}, "unknown config key 'roundz'"),
    ({"policies": ["classic/tit_for_tat"], "executor": "slurm"}, "executor"),
    ({"policies": []}, "policies"),
])
def test_bad_config_values_name_the_problem(bad, message):
    with pytest.raises(TomarenaError, match=message):
        validate_config(bad)


def test_cli_bad_input_is_one_line_exit_2(tmp_path):
    cases = [
        ["tournament", "--policies", "classic/tit_for_tatt", "--out", str(tmp_path / "a")],
        ["tournament", "--policies", "classic/tit_for_tat", "--rounds", "-1", "--out", str(tmp_path / "b")],
        ["sweep", "--policies", "classic/random?q=1", "--out", str(tmp_path / "c")],
        ["tournament", "--policies", "classic/tit_for_tat", "--config", str(tmp_path / "nope.yaml"),
         "--out", str(tmp_path / "d")],
        ["traces", "export", str(tmp_path / "missing"), "--policy", "x", "--out", str(tmp_path / "x.jsonl")],
    ]
    for argv in cases:
        res = subprocess.run(TOMARENA + argv, capture_output=True, text=True, timeout=120)
        assert res.returncode == 2, (argv, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr, res.stderr


def test_export_writes_trl_chat_jsonl_that_datasets_loads(tmp_path):
    cfg = validate_config({"policies": ["strategist/reference", "classic/tit_for_tat"], "rounds": 3,
                           "games": ["prisoners_dilemma", "stag_hunt"], "framings": ["business"]})
    out = run(cfg, tmp_path / "run", progress=False)
    from tomarena.arena.export import export_traces

    n = export_traces(out, "strategist/reference", tmp_path / "t.jsonl")
    lines = [json.loads(x) for x in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert n == len(lines) == 2 * (2 * 3 + 3)  # two games: vs tit_for_tat (3 rounds, one seat) + self-play (2 seats)
    ex = lines[0]
    assert [m["role"] for m in ex["messages"]] == ["system", "user", "assistant"]
    assert ex["messages"][2]["content"].startswith("I choose ")
    assert [m["role"] for m in ex["letter_messages"]] == ["system", "user"]
    assert abs(sum(ex["teacher_probs"]) - 1) < 1e-9
    later = next(x for x in lines if x["round"] == 2)
    assert "Round 2:" in later["letter_messages"][1]["content"]
    import datasets

    ds = datasets.load_dataset("json", data_files=str(tmp_path / "t.jsonl"), split="train")
    assert len(ds) == n and ds[0]["messages"][0]["role"] == "system"
    assert (tmp_path / "t.parquet").stat().st_size > 0


def test_cli_tournament_and_play(tmp_path):
    res = subprocess.run(TOMARENA + ["tournament", "--policies", "classic/tit_for_tat,classic/always_defect",
                                     "--game", "prisoners_dilemma_axelrod", "--rounds", "10", "--out",
                                     str(tmp_path / "t"), "--no-progress"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "classic/always_defect" in res.stdout and (tmp_path / "t" / "crossplay.csv").exists()
    res = subprocess.run(TOMARENA + ["play", "classic/tit_for_tat", "classic/always_defect", "--rounds", "2"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "round   2 player_0: D" in res.stdout, res.stdout + res.stderr

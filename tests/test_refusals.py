"""Smaller defects of issue 25 item 8, each now one clear line or a right count: a config of the other kind, a
policy listed twice, a missing adapter path, a plugin factory's ValueError, the report's help naming real commands,
and generate-mode answers that fail to parse counted as parse failures, not backend errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import tomarena
from tomarena.agents.base import POLICIES, Policy, register_policy
from tomarena.agents.llm.hf_load import resolve_adapter
from tomarena.agents.llm.llm_policy import LLMPolicy
from tomarena.agents.resolve import resolve_policy
from tomarena.app.cli import build_parser, main
from tomarena.errors import ConfigError

TFT, ALLD = "classic/tit_for_tat", "classic/always_defect"


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    """The single line the CLI printed on stderr, without its prefix (fails on anything else)."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.removeprefix("tomarena: error: ").rstrip("\n")


# -- 1. a config file of the other kind ---------------------------------------------------------------------------
@pytest.mark.parametrize(("command", "said", "hint"), [
    ("tournament", "sweep", "run it with `tomarena sweep --config {cfg}`"),
    ("sweep", "tournament", "run it with `tomarena tournament --config {cfg}`"),
    ("tournament", "league", "allowed: tournament, sweep"),
])
def test_config_of_the_other_kind_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str,
                                             said: str, hint: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"kind: {said}\npolicies: [{TFT}]\n", encoding="utf-8")
    out = tmp_path / "run"
    assert main([command, "--config", str(cfg), "--out", str(out), "--no-progress"]) == 2
    line = one_line_error(capsys)
    assert line.startswith(f"config file {cfg} has kind: {said}, but this command runs a {command}; "
                           f"{hint.format(cfg=cfg)}, or remove `kind:` from the file")
    assert not out.exists()


def test_config_of_the_same_kind_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"kind: tournament\npolicies: [{TFT}, {ALLD}]\nrounds: 2\n", encoding="utf-8")
    assert main(["tournament", "--config", str(cfg), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    assert capsys.readouterr().out.startswith(f"run {tmp_path / 'run'}: 3 episodes, 12 decisions")


# -- 2. a policy listed twice ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("flags", [
    ["--policies", f"{TFT},{ALLD},{TFT}"],
    ["--policies", f"{TFT},{ALLD}", "--policies", TFT],
    ["--policies", f"{TFT}, {TFT} "],
])
def test_duplicate_policies_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        flags: list[str]) -> None:
    assert main(["tournament", *flags, "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    line = one_line_error(capsys)
    assert f"in flags: policy '{TFT}' is given twice; list each policy once" in line
    assert not (tmp_path / "run").exists()


def test_duplicate_policies_in_a_config_file_are_refused(tmp_path: Path) -> None:
    from tomarena.arena.config import load_config

    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"policies: [{ALLD}, {TFT}, {ALLD}]\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(cfg, {"kind": "tournament"})
    assert str(info.value).endswith(f"in config file {cfg}: policy '{ALLD}' is given twice; list each policy once")


# -- 3. adapter paths -----------------------------------------------------------------------------------------------
def test_missing_adapter_path_says_it_does_not_exist(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["play", "llm/smollm2-135m-instruct?adapter=/no/such/dir", ALLD]) == 2
    assert one_line_error(capsys) == ("adapter path '/no/such/dir' does not exist; give the directory `tomarena "
                                      "finetune` wrote (it holds adapter_config.json)")


def test_adapter_path_that_is_no_adapter(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        resolve_adapter(str(tmp_path))
    assert str(info.value) == (f"adapter directory '{tmp_path}' holds no adapter_config.json, so it is not a PEFT "
                               "adapter; give the directory `tomarena finetune` wrote")
    with pytest.raises(ConfigError) as info:
        resolve_adapter(str(tmp_path / "file"))
    assert str(info.value) == (f"adapter path '{tmp_path / 'file'}' is a file, not a PEFT adapter directory (one "
                               "holding adapter_config.json)")
    (tmp_path / "adapter_config.json").write_text("{}", encoding="utf-8")
    assert resolve_adapter(str(tmp_path)) == str(tmp_path)


# -- 4. a plugin factory's ValueError -------------------------------------------------------------------------------
def _picky(p: float = 0.5) -> Policy:
    """A plugin-style factory that refuses its option with a plain ValueError."""
    if not 0 <= p <= 1:
        raise ValueError(f"p must be in [0, 1], got {p}")
    return resolve_policy(TFT)


@pytest.fixture
def picky_plugin():
    POLICIES.ids()  # load the built-in and plugin policies first
    register_policy("testplugin/picky", _picky, "refuses p outside [0, 1]", "plugin")
    yield "testplugin/picky"
    POLICIES.unregister("testplugin/picky")


def test_plugin_value_error_is_one_line_naming_the_spec(picky_plugin: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    spec = f"{picky_plugin}?p=2"
    assert main(["play", spec, ALLD]) == 2
    assert one_line_error(capsys) == f"policy '{spec}' cannot be built: p must be in [0, 1], got 2.0"
    with pytest.raises(ConfigError) as info:
        resolve_policy(spec)
    assert isinstance(info.value.__cause__, ValueError) and str(info.value.__cause__) == "p must be in [0, 1], got 2.0"
    assert resolve_policy(f"{picky_plugin}?p=1").id == f"{picky_plugin}?p=1"


# -- 5. help text names real commands -------------------------------------------------------------------------------
def test_report_help_names_only_real_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["report", "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    named = set(re.findall(r"`tomarena (\w[\w-]*)", text))
    commands = set(next(a for a in build_parser()._subparsers._group_actions).choices)  # type: ignore[union-attr]
    assert "tournament" in named and named <= commands  # every `tomarena X` it names is a command
    assert "(written by `tomarena tournament`, `sweep` or `import`, or by a pipeline's arena stages)" in text
    assert "tomarena run" not in text


# -- 6. generate-mode parse failures are not backend errors ---------------------------------------------------------
class Mumbler:
    """A backend that answers every prompt with text naming no action (and scores C at 0.75)."""

    batch_invariant = True

    def __init__(self) -> None:
        self.stats: dict[str, int] = {}

    def score(self, prompts: list, options: list[str], answer_prefix: str = "") -> np.ndarray:
        return self.score_detailed(prompts, options, answer_prefix)[0]

    def score_detailed(self, prompts: list, options: list[str], answer_prefix: str = "") -> tuple[np.ndarray, list]:
        row = np.log([0.75 if o == options[0] else 0.25 / (len(options) - 1) for o in options])
        return np.tile(row, (len(prompts), 1)), [10] * len(prompts)

    def generate(self, prompts: list, max_new_tokens: int = 64, temperature: float = 1.0, seeds: list | None = None,
                 **_: object) -> list[tuple[str, int, int]]:
        return [("I would rather not say.", 10, 5) for _ in prompts]

    def describe(self) -> dict[str, str]:
        return {"backend": "mumbler"}

    def file_hashes(self) -> dict[str, str]:
        return {}


def test_unparsed_answers_are_parse_failures_not_backend_errors(tmp_path: Path) -> None:
    policy = LLMPolicy(Mumbler(), mode="generate", fallback="D", policy_id="mumbler")
    res = tomarena.tournament({"mumbler": policy, ALLD: ALLD}, rounds=3, self_play=False, out=tmp_path / "run")
    # one match of 3 rounds: the mumbler's 3 answers all fail to parse and fall back to D
    assert (res.summary["rows"], res.summary["parse_failures"], res.summary["fallbacks"]) == (6, 3, 3)
    assert res.summary["backend_errors"] == 0
    mine = res.traces[res.traces["policy"] == "mumbler"]
    assert mine["error"].isna().all() and set(mine["parse_status"]) == {"failed"}
    assert set(mine["completion"]) == {"I would rather not say."}


def test_scored_fallback_records_no_backend_error() -> None:
    from tomarena.envs.framings import get_framing
    from tomarena.envs.games import get_game
    from tomarena.envs.social_dilemma import Observation

    obs = Observation(get_game("prisoners_dilemma"), get_framing("none"), 0, 0, 3)
    d, _ = LLMPolicy(Mumbler(), mode="generate", fallback="score").act(obs, None, np.random.default_rng(0))
    assert (d.source, d.parse_status, d.error, d.completion) == ("fallback", "fallback", None,
                                                                 "I would rather not say.")
    assert d.probs == pytest.approx((0.75, 0.25))


def test_answers_resolved_by_a_scored_fallback_count_as_parse_failures(tmp_path: Path) -> None:
    policy = LLMPolicy(Mumbler(), mode="generate", fallback="score", policy_id="mumbler")
    res = tomarena.tournament({"mumbler": policy, ALLD: ALLD}, rounds=3, self_play=False, out=tmp_path / "run")
    # the mumbler's 3 answers fail to parse and are scored instead (parse_status "fallback"), with no backend error
    assert set(res.traces[res.traces["policy"] == "mumbler"]["parse_status"]) == {"fallback"}
    assert (res.summary["rows"], res.summary["parse_failures"], res.summary["fallbacks"],
            res.summary["backend_errors"]) == (6, 3, 3, 0)


def test_summary_counts_a_backend_failure_as_a_backend_error_only() -> None:
    import pyarrow as pa

    from tomarena.arena.runner import _counts

    statuses = ["ok", "failed", "fallback", "failed", "default", None]
    errors = [None, None, None, "backend failed: 503; fallback D", None, None]
    sources = ["llm", "fallback", "fallback", "fallback", "fallback", "rule"]
    table = pa.table({"episode_id": ["e1"] * 3 + ["e2"] * 3,
                      "parse_status": pa.array(statuses).dictionary_encode(), "error": pa.array(errors, pa.string()),
                      "source": pa.array(sources).dictionary_encode()})
    assert _counts(table) == {"episodes": 2, "rows": 6, "parse_failures": 2, "fallbacks": 4, "parse_defaults": 1,
                              "backend_errors": 1}

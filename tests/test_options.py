"""tomarena.options: flags generated from a model's fields, one YAML wording, one validation wording; every
checker fed something broken fails with one line naming it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tomarena.errors import ConfigError
from tomarena.options import (
    CommaList,
    CommaTuple,
    add_flags,
    flag_values,
    load,
    read_yaml,
    split_commas,
    split_list,
    validate,
)


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    depth: int = Field(1, ge=0, description="how deep")
    width: int = Field(2, ge=0, description="how wide")


class Knobs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rounds: int = Field(10, ge=1, description="rounds per match")
    rate: float | None = Field(None, gt=0, description="a rate (none: off)")
    mode: Literal["fast", "slow"] = Field("fast", description="how to run")
    cache: bool = Field(True, description="keep results")
    strict: bool = Field(False, description="fail early")
    games: CommaList = Field(default_factory=lambda: ["pd", "sh"], description="games to play")
    targets: CommaTuple = Field((), description="modules")
    name: str = Field("run", description="what to call it")
    inner: Inner = Field(default_factory=Inner, description="nested settings")


def parser(exclude: tuple[str, ...] = ("inner",)) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="t")
    assert add_flags(p, Knobs, exclude=exclude, aliases={"games": ["--game"]}) == [
        "rounds", "rate", "mode", "cache", "strict", "games", "targets", "name"]
    return p


def actions(p: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in p._actions if a.dest != "help"}


def test_flags_get_names_types_choices_and_help_from_the_fields() -> None:
    acts = actions(parser())
    assert {d: a.option_strings for d, a in acts.items()} == {
        "rounds": ["--rounds"], "rate": ["--rate"], "mode": ["--mode"], "cache": ["--cache", "--no-cache"],
        "strict": ["--strict", "--no-strict"], "games": ["--games", "--game"], "targets": ["--targets"],
        "name": ["--name"]}
    assert (acts["rounds"].type, acts["rate"].type, acts["name"].type) == (int, float, str)
    assert acts["mode"].choices == ("fast", "slow")
    assert isinstance(acts["cache"], argparse.BooleanOptionalAction)
    assert isinstance(acts["games"], argparse._AppendAction)
    assert {d: a.default for d, a in acts.items()} == dict.fromkeys(acts)  # a flag not given overrides nothing
    assert {d: a.help for d, a in acts.items()} == {
        "rounds": "rounds per match (default: 10)", "rate": "a rate (none: off)", "mode": "how to run (default: fast)",
        "cache": "keep results (default: yes)", "strict": "fail early (default: no)",
        "games": "games to play (default: pd,sh)", "targets": "modules (default: none)",
        "name": "what to call it (default: run)"}


def test_parsed_flags_become_overrides() -> None:
    args = parser().parse_args(["--game", "a,b", "--games", "c", "--no-cache", "--strict", "--targets", "q, v",
                                "--rate", "0.5"])
    assert flag_values(args, Knobs) == {"games": ["a", "b", "c"], "cache": False, "strict": True,
                                        "targets": ["q", "v"], "rate": 0.5}
    assert flag_values(parser().parse_args([]), Knobs) == {}
    k = validate(Knobs, flag_values(args, Knobs))
    assert (k.games, k.targets, k.cache, k.rounds) == (["a", "b", "c"], ("q", "v"), False, 10)


def test_bad_flag_values_are_argparse_errors(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, needle in ((["--rounds", "ten"], "argument --rounds: invalid int value: 'ten'"),
                         (["--mode", "warp"], "argument --mode: invalid choice: 'warp'")):
        with pytest.raises(SystemExit):
            parser().parse_args(argv)
        assert needle in capsys.readouterr().err


def test_a_field_without_a_flag_form_must_be_left_out() -> None:
    with pytest.raises(TypeError, match="field 'inner' .* has no flag form"):
        add_flags(argparse.ArgumentParser(), Knobs)


def test_split_commas() -> None:
    assert split_commas("a, b,,c ") == ["a", "b", "c"]
    assert split_commas(["a,b", "c", 3]) == ["a", "b", "c", 3]
    assert split_commas(("x",)) == ["x"]
    assert split_commas(5) == 5


@pytest.mark.parametrize(("text", "items"), [
    ("classic/tit_for_tat, classic/always_defect", ["classic/tit_for_tat", "classic/always_defect"]),
    ("classic/memory_one?p=1,0,1,0", ["classic/memory_one?p=1,0,1,0"]),
    ("classic/memory_one?p=1,0,1,0,classic/tit_for_tat", ["classic/memory_one?p=1,0,1,0", "classic/tit_for_tat"]),
    ("m?p=1,-0.5,.5,1e-3&first=0,axelrod:Grudger,hf:/m?adapter=/a", ["m?p=1,-0.5,.5,1e-3&first=0", "axelrod:Grudger",
                                                                     "hf:/m?adapter=/a"]),
    ("'classic/memory_one?p=1,0,1,0',classic/tit_for_tat", ["classic/memory_one?p=1,0,1,0", "classic/tit_for_tat"]),
    ('classic/memory_one?p="1,0,1,0",x', ["classic/memory_one?p=1,0,1,0", "x"]),
    ("classic/memory_one?p=[1,0,1,0],classic/grim_trigger", ["classic/memory_one?p=[1,0,1,0]", "classic/grim_trigger"]),
    ("stag_hunt?R=4&S=0&T=3&P=2,prisoners_dilemma", ["stag_hunt?R=4&S=0&T=3&P=2", "prisoners_dilemma"]),
    ("0,1, 2", ["0", "1", "2"]),
    ("axelrod:N Tit(s) For M Tat(s),b", ["axelrod:N Tit(s) For M Tat(s)", "b"]),
])
def test_split_list_keeps_commas_of_option_values(text: str, items: list[str]) -> None:
    assert split_list(text) == items
    assert split_commas([text, "z"]) == [*items, "z"]


@pytest.mark.parametrize(("text", "wording"), [
    ("a?p='1,0", "unclosed ' in list \"a?p='1,0\"; close the quote"),
    ("a?p=[1,0", "unclosed [ in list 'a?p=[1,0'; close it with ]"),
])
def test_split_list_refuses_an_unclosed_quote_or_bracket(text: str, wording: str) -> None:
    with pytest.raises(ConfigError) as info:
        split_list(text)
    assert str(info.value) == wording


def test_a_validators_own_sentence_is_the_rule() -> None:
    class Picky(BaseModel):
        name: str

        @field_validator("name")
        @classmethod
        def _short(cls, v: str) -> str:
            raise ValueError(f"name {v!r} is too long")

    with pytest.raises(ConfigError) as info:
        validate(Picky, {"name": "abcdef"}, "picky", "flags")
    assert str(info.value) == "bad picky value name='abcdef' in flags: name 'abcdef' is too long"


@pytest.mark.parametrize(("text", "wording"), [
    (None, "knob file {p} does not exist"),
    ("dir", "knob file {p} is a directory, not a YAML file"),
    ("a: [1\nb: 2\n", "knob file {p} is not valid YAML: expected ',' or ']', but got ':' (line 2)"),
    ("- 1\n- 2\n", "knob file {p} must hold a mapping of keys, got list"),
    ("just text", "knob file {p} must hold a mapping of keys, got str"),
])
def test_yaml_problems_have_one_wording(tmp_path: Path, text: str | None, wording: str) -> None:
    p = tmp_path / "k.yaml"
    if text == "dir":
        p.mkdir()
    elif text is not None:
        p.write_text(text)
    with pytest.raises(ConfigError) as info:
        read_yaml(p, "knob file")
    assert str(info.value) == wording.format(p=p)


def test_yaml_empty_file_and_named_section(tmp_path: Path) -> None:
    p = tmp_path / "k.yaml"
    p.write_text("")
    assert read_yaml(p) == {}
    p.write_text("out: x\nknobs: {rounds: 3}\n")
    assert read_yaml(p, section="knobs") == {"rounds": 3}
    assert read_yaml(p, section="other") == {"out": "x", "knobs": {"rounds": 3}}


@pytest.mark.parametrize(("data", "wording"), [
    ({"roundz": 3}, "unknown knob key 'roundz' in knob file k.yaml; allowed: rounds, rate, mode, cache, strict, "
                    "games, targets, name, inner"),
    ({"inner": {"height": 1}}, "unknown knob key 'inner.height' in knob file k.yaml; allowed: depth, width"),
    ({"rounds": 0}, "bad knob value rounds=0 in knob file k.yaml: Input should be greater than or equal to 1"),
    ({"mode": "warp"}, "bad knob value mode='warp' in knob file k.yaml: Input should be 'fast' or 'slow'"),
    ({"inner": {"depth": -1}}, "bad knob value inner.depth=-1 in knob file k.yaml: Input should be greater than or "
                               "equal to 0"),
    ({"name": "x" * 100}, None),
])
def test_validation_problems_have_one_wording(data: dict, wording: str | None) -> None:
    if wording is None:  # a valid value passes
        assert validate(Knobs, data).name == "x" * 100
        return
    with pytest.raises(ConfigError) as info:
        validate(Knobs, data, "knob", "knob file k.yaml")
    assert str(info.value) == wording


def test_missing_key_and_long_values_and_the_source_of_a_bad_key() -> None:
    class Needs(BaseModel):
        must: int = Field(description="required")
        text: str = Field("", max_length=3, description="short")

    with pytest.raises(ConfigError, match="^missing config key 'must'$"):
        validate(Needs, {})
    with pytest.raises(ConfigError) as info:
        validate(Needs, {"must": 1, "text": "y" * 200}, source="file f.yaml", flags={"text": "y" * 200})
    assert str(info.value) == (f"bad config value text='{'y' * 56}... in flags: String should have at most 3 "
                               "characters")


def test_load_reads_the_file_then_applies_the_flags(tmp_path: Path) -> None:
    p = tmp_path / "k.yaml"
    p.write_text("rounds: 3\nmode: slow\ngames: a,b\n")
    k = load(Knobs, p, {"rounds": 7, "rate": None}, what="knob file", noun="knob")
    assert (k.rounds, k.mode, k.games, k.rate) == (7, "slow", ["a", "b"], None)
    assert load(Knobs, None, {"name": "n"}).name == "n"
    p.write_text("rounds: 0\n")
    with pytest.raises(ConfigError, match=f"^bad knob value rounds=0 in knob file {p}: "):
        load(Knobs, p, {}, what="knob file", noun="knob")
    with pytest.raises(ConfigError, match="^bad knob value rounds=-2 in flags: "):
        load(Knobs, p, {"rounds": -2}, what="knob file", noun="knob")


def test_every_config_field_is_described() -> None:
    from tomarena.app.pipeline import MeasureStage, PipelineConfig, TeacherStage, TournamentStage
    from tomarena.arena.config import RunConfig
    from tomarena.training.config import FinetuneConfig

    for model in (RunConfig, FinetuneConfig, PipelineConfig, TeacherStage, MeasureStage, TournamentStage):
        assert [n for n, f in model.model_fields.items() if not f.description] == [], model.__name__

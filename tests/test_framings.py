"""Framings: the built-in data files, the validator of framing files, and users' framing directories."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tomarena.envs import FRAMINGS, Framing, get_framing, load_framing, register_framing_dir
from tomarena.envs.framings import ATTRIBUTES, BUILTIN_DIR, framings_by_sample
from tomarena.errors import ConfigError, RegistryError

GOOD = {
    "id": "orchard",
    "title": "Shared orchard",
    "sample": "out",
    "role": "You tend one half of an orchard that you share with a neighbour.",
    "co_player": "the neighbour",
    "options": {"C": "a watering plan labelled C", "D": "a watering plan labelled D"},
    "goal": "harvest as much fruit as you can",
    "attributes": {"warmth": 0.5, "closeness": 0.7, "shared_fate": 0.9, "public_scrutiny": 0.1, "competition": 0.2},
}


def _write(path: Path, data: object) -> Path:
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def _with(**changes: object) -> dict:
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    for key, value in changes.items():
        *parents, leaf = key.split("__")
        node = data
        for p in parents:
            node = node[p]
        if value is None:
            del node[leaf]
        else:
            node[leaf] = value
    return data


@pytest.fixture
def scratch_ids():
    """Ids registered by a test; removed again so the global registry stays as shipped."""
    ids: list[str] = []
    yield ids
    for i in ids:
        FRAMINGS._entries.pop(i, None)


def test_builtin_framings() -> None:
    assert framings_by_sample("in") == ["business", "environment", "friendsharing", "ir", "team"]
    assert framings_by_sample("out") == ["roomsharing", "sports", "ventcap"]
    assert framings_by_sample("none") == ["none"]
    assert len(list(BUILTIN_DIR.glob("*.yaml"))) == 9
    for fid in FRAMINGS.ids():
        f = get_framing(fid)
        assert f.id == fid and f.role and f.goal and f.option_c != f.option_d
        assert set(f.attributes) == set(ATTRIBUTES) and all(0 <= v <= 1 for v in f.attributes.values())
        assert "\n" not in f.role and "  " not in f.goal  # folded to one line
    ir = get_framing("ir")
    assert ir.sample == "in" and ir.co_player == "the other nation's delegate"
    assert ir.attributes == {"warmth": 0.2, "closeness": 0.1, "shared_fate": 0.3, "public_scrutiny": 0.6,
                             "competition": 0.6}
    assert get_framing("friendsharing").warmth > get_framing("business").warmth
    assert get_framing(ir) is ir


def test_relationship_sentence() -> None:
    neutral = {"ir": "Relations between the two nations are neutral.",
               "business": "Relations between the two companies are neutral.",
               "sports": "Your relationship with the other athlete is neutral.",
               "ventcap": "Your relationship with the other investor is neutral."}
    assert {fid: get_framing(fid).relationship for fid in FRAMINGS.ids() if get_framing(fid).relationship} == neutral
    assert "from now on" not in get_framing("friendsharing").role
    assert get_framing("roomsharing").goal == ("make the living situation you share work as well as it can, "
                                               "measured in points")


def test_relationship_is_optional_and_folded(tmp_path: Path) -> None:
    assert load_framing(_write(tmp_path / "a.yaml", GOOD)).relationship == ""
    f = load_framing(_write(tmp_path / "b.yaml", _with(relationship="You and the neighbour\n  get on  well.")))
    assert f.relationship == "You and the neighbour get on well."
    with pytest.raises(ConfigError, match=r"bad framing value relationship=\['x'\] in framing file .*c.yaml: "
                       "Input should be a valid string$"):
        load_framing(_write(tmp_path / "c.yaml", _with(relationship=["x"])))


def test_load_good_file(tmp_path: Path) -> None:
    f = load_framing(_write(tmp_path / "orchard.yaml", GOOD))
    assert isinstance(f, Framing)
    assert (f.id, f.sample) == ("orchard", "out")
    assert (f.option_c, f.co_player) == ("a watering plan labelled C", "the neighbour")
    assert f.shared_fate == 0.9


BAD_FILES = [
    ("id: x\n title: [unclosed\n", " is not valid YAML: mapping values are not allowed here (line 2)"),
    ("- just\n- a list\n", " must hold a mapping of keys, got list"),
    ("", "missing framing key 'id' in framing file "),
    (_with(colour="red"), "unknown framing key 'colour' in framing file "),
    (_with(colour="red"), "; allowed: id, title, sample, role, co_player, relationship, options, goal, attributes"),
    (_with(attributes__kindness=0.5), "; allowed: warmth, closeness, shared_fate, public_scrutiny, competition"),
    (_with(goal=None), "missing framing key 'goal'"),
    (_with(options__D=None), "missing framing key 'options.D'"),
    (_with(attributes__warmth=1.5), "bad framing value attributes.warmth=1.5 in framing file "),
    (_with(attributes__warmth=1.5), ": Input should be less than or equal to 1"),
    (_with(attributes__competition=-0.1), ": Input should be greater than or equal to 0"),
    (_with(sample="inside"), "sample='inside' in framing file "),
    (_with(sample="inside"), ": Input should be 'in', 'out' or 'none'"),
    (_with(id="Bad Id"), "id='Bad Id' in framing file "),
    (_with(title=""), ": String should have at least 1 character"),
]


@pytest.mark.parametrize(("content", "needle"), BAD_FILES)
def test_bad_framing_file_gives_one_line(tmp_path: Path, content: object, needle: str) -> None:
    path = _write(tmp_path / "bad.yaml", content)
    with pytest.raises(ConfigError) as info:
        load_framing(path)
    msg = str(info.value)
    assert str(path) in msg and needle in msg and "\n" not in msg


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="^framing file .*nope.yaml does not exist$"):
        load_framing(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="framing directory .*absent does not exist"):
        register_framing_dir(tmp_path / "absent")


def test_unknown_framing_suggests_close_match() -> None:
    with pytest.raises(RegistryError) as info:
        get_framing("buisness")
    assert str(info.value) == "unknown framing 'buisness'; did you mean business?"


def test_register_framing_dir(tmp_path: Path, scratch_ids: list[str]) -> None:
    _write(tmp_path / "orchard.yaml", GOOD)
    _write(tmp_path / "harbour.yml", _with(id="harbour", title="Harbour"))
    (tmp_path / "notes.txt").write_text("not a framing")
    scratch_ids += ["orchard", "harbour"]
    assert register_framing_dir(tmp_path) == ["harbour", "orchard"]  # files in name order
    assert get_framing("orchard").title == "Shared orchard" and "harbour" in FRAMINGS
    assert "orchard" in framings_by_sample("out")
    with pytest.raises(RegistryError, match=r"framing id 'harbour' is already registered \(framing file .*harbour.yml"):
        register_framing_dir(tmp_path)
    _write(tmp_path / "orchard.yaml", _with(title="Orchard, renamed"))
    register_framing_dir(tmp_path, replace=True)
    assert get_framing("orchard").title == "Orchard, renamed"


def test_register_single_file_and_builtin_clash(tmp_path: Path, scratch_ids: list[str]) -> None:
    scratch_ids.append("orchard")
    assert register_framing_dir(_write(tmp_path / "orchard.yaml", GOOD)) == ["orchard"]
    with pytest.raises(RegistryError, match="framing id 'ir' is already registered"):
        register_framing_dir(_write(tmp_path / "ir.yaml", _with(id="ir")))
    assert get_framing("ir").title == "International relations"


def test_directory_registers_all_or_nothing(tmp_path: Path, scratch_ids: list[str]) -> None:
    scratch_ids += ["orchard", "harbour"]
    _write(tmp_path / "a.yaml", GOOD)
    _write(tmp_path / "b.yaml", _with(id="harbour", goal=None))
    with pytest.raises(ConfigError, match="missing framing key 'goal' in framing file .*b.yaml"):
        register_framing_dir(tmp_path)
    assert "orchard" not in FRAMINGS
    _write(tmp_path / "b.yaml", GOOD)
    with pytest.raises(RegistryError, match=r"framing id 'orchard' is declared twice: in .*a.yaml and .*b.yaml"):
        register_framing_dir(tmp_path)
    assert "orchard" not in FRAMINGS


def _fresh(code: str, framings_env: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TOMARENA_FRAMINGS": framings_env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60,
                          check=False)


def test_env_var_adds_and_overrides_framings(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    _write(a / "orchard.yaml", GOOD)
    _write(b / "team.yaml", yaml.safe_load((BUILTIN_DIR / "team.yaml").read_text()) | {"title": "My team"})
    code = ("from tomarena.envs import get_framing, FRAMINGS; "
            "print(get_framing('orchard').title, '|', get_framing('team').title, '|', len(FRAMINGS))")
    out = _fresh(code, os.pathsep.join([str(a), str(b)]))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Shared orchard | My team | 10"


def test_env_var_with_broken_file_fails_every_time(tmp_path: Path) -> None:
    _write(tmp_path / "broken.yaml", _with(attributes__warmth=2))
    code = ("from tomarena.envs import FRAMINGS\n"
            "for _ in range(2):\n"
            "    try:\n        FRAMINGS.get('ir')\n"
            "    except Exception as e:\n        print(type(e).__name__, e)\n")
    out = _fresh(code, str(tmp_path))
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0] == lines[1]
    assert lines[0].startswith("ConfigError bad framing value attributes.warmth=2 in framing file "
                               f"{tmp_path / 'broken.yaml'}: ")
    assert lines[0].endswith("less than or equal to 1 (from TOMARENA_FRAMINGS)")

"""The generic Registry: duplicates, close-match messages, lazy loading."""

from __future__ import annotations

import pytest

from tomarena.errors import RegistryError, TomarenaError
from tomarena.registry import Registry


def test_register_get_and_iterate() -> None:
    reg: Registry[int] = Registry("widget")
    assert reg.register("b", 2) == 2
    reg.register("a", 1)
    assert reg.get("a") == 1 and "b" in reg and "c" not in reg
    assert reg.ids() == ["a", "b"] and list(reg) == ["a", "b"] and len(reg) == 2


def test_duplicates_refused_unless_replace() -> None:
    reg: Registry[str] = Registry("widget")
    reg.register("classic/tit_for_tat", "x")
    with pytest.raises(RegistryError) as info:
        reg.register("classic/tit_for_tat", "y")
    assert str(info.value) == "widget id 'classic/tit_for_tat' is already registered"
    reg.register("classic/tit_for_tat", "y", replace=True)
    assert reg.get("classic/tit_for_tat") == "y"


@pytest.mark.parametrize("bad", ["", None, 3])
def test_bad_ids_refused(bad: object) -> None:
    with pytest.raises(RegistryError, match=f"widget id must be a non-empty string, got {bad!r}"):
        Registry("widget").register(bad, 1)  # type: ignore[arg-type]


def test_unknown_id_suggests_close_matches_or_lists_known() -> None:
    reg: Registry[int] = Registry("game")
    for i, name in enumerate(["stag_hunt", "stag_hunt_doubled", "snowdrift"]):
        reg.register(name, i)
    with pytest.raises(RegistryError) as info:
        reg.get("stag_hunts")
    assert str(info.value) == "unknown game 'stag_hunts'; did you mean stag_hunt, stag_hunt_doubled?"
    assert isinstance(info.value, TomarenaError) and isinstance(info.value, KeyError)
    with pytest.raises(RegistryError) as info:
        reg.get("zzz")
    assert str(info.value) == "unknown game 'zzz'; known: snowdrift, stag_hunt, stag_hunt_doubled"


def test_long_known_list_is_cut() -> None:
    reg: Registry[int] = Registry("policy")
    for i in range(30):
        reg.register(f"p{i:02d}", i)
    msg = reg.unknown_message("qqqqqqq")
    assert msg.startswith("unknown policy 'qqqqqqq'; known: p00, p01,") and msg.endswith("p24 ...")


def test_loader_runs_once_on_first_use() -> None:
    calls: list[int] = []

    def load() -> None:
        calls.append(1)
        reg.register("x", 1)

    reg: Registry[int] = Registry("thing", loader=load)
    assert calls == []
    assert reg.get("x") == 1 and reg.ids() == ["x"] and len(reg) == 1 and "x" in reg
    assert calls == [1]


def test_public_loader_reset_unregister_and_peek() -> None:
    from tomarena.registry import Registry

    calls = []
    reg: Registry[int] = Registry("thing")
    reg.set_loader(lambda: (calls.append(1), reg.register("a", 1)))
    assert reg.peek("a") is None and not reg.registered("a") and calls == []  # neither runs the loader
    assert reg.get("a") == 1 and calls == [1]
    assert reg.unregister("a") == 1 and reg.unregister("a") is None and reg.ids() == []
    reg.reset()
    assert reg.ids() == ["a"] and calls == [1, 1]  # the loader runs again after reset

"""tomarena.study.validate against the registries, which the caller passes in (the study data sits below envs)."""

from __future__ import annotations

import pytest

from tomarena import study
from tomarena.envs import FRAMINGS, GAMES
from tomarena.errors import ConfigError


def test_shipped_cells_name_registered_games_and_framings() -> None:
    assert study.validate(GAMES, FRAMINGS) == {"in_sample": 20, "oos_framings": 12, "oos_games": 20}


def test_a_cell_outside_the_registries_is_one_line() -> None:
    first = study.one_shot_cells()[0]
    framings = set(FRAMINGS.ids()) - {first.framing}
    with pytest.raises(ConfigError, match=f"^study cell {first.model}/{first.framing}/{first.game}: framing or game "
                                          "is not registered$"):
        study.validate(GAMES, framings)

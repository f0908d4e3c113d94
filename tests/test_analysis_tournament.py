"""Tournament analysis: the cross-play matrix, Moran fixation and replicator dynamics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tests.test_analysis_fixtures import match_rows
from tomarena.analysis.tournament import crossplay_matrices, moran_fixation, moran_table, replicator
from tomarena.errors import ConfigError

AXELROD = np.array([[3.0, 0.0], [5.0, 1.0]])  # rows: own C, D; columns: co-player C, D


def _frame() -> pd.DataFrame:
    rows = []
    for rep in range(3):
        rows += match_rows("allc", "alld", [0, 0], [1, 1], game="prisoners_dilemma_axelrod", rep=rep)
        rows += match_rows("allc", "allc", [0, 0], [0, 0], game="prisoners_dilemma_axelrod", rep=rep)
        rows += match_rows("alld", "alld", [1, 1], [1, 1], game="prisoners_dilemma_axelrod", rep=rep)
    return pd.DataFrame(rows)


def test_crossplay_matrix() -> None:
    m = crossplay_matrices(_frame())["prisoners_dilemma_axelrod"]
    assert m.loc["allc", "alld"] == 0.0 and m.loc["alld", "allc"] == 5.0
    assert m.loc["allc", "allc"] == 3.0 and m.loc["alld", "alld"] == 1.0


def test_moran_neutral_mutant_fixes_with_one_over_n() -> None:
    flat = np.full((2, 2), 2.0)
    for n in (2, 5, 10):
        assert moran_fixation(flat, 0, 1, n) == pytest.approx(1 / n)


def test_moran_hand_value_for_two_individuals() -> None:
    # N=2: rho = 1 / (1 + exp(w * (a[res, mut] - a[mut, res])))
    assert moran_fixation(AXELROD, 1, 0, n=2) == pytest.approx(1 / (1 + math.exp(-5)))
    assert moran_fixation(AXELROD, 0, 1, n=2, w=0.5) == pytest.approx(1 / (1 + math.exp(2.5)))
    with pytest.raises(ConfigError, match="got 1"):
        moran_fixation(AXELROD, 0, 1, n=1)


def test_moran_table_and_replicator_on_prisoners_dilemma() -> None:
    m = pd.DataFrame(AXELROD, index=["allc", "alld"], columns=["allc", "alld"])
    rho = moran_table(m, n=10)
    assert rho.loc["alld", "allc"] > 0.1 > rho.loc["allc", "alld"]
    shares = replicator(m, steps=2000)
    assert shares["alld"] == pytest.approx(1.0, abs=1e-6)


def test_incomplete_matrix_is_rejected() -> None:
    m = pd.DataFrame([[3.0, np.nan], [5.0, 1.0]], index=["a", "b"], columns=["a", "b"])
    with pytest.raises(ConfigError, match="complete square"):
        replicator(m)

"""Statistics against hand calculations: Wilson and t intervals, two-proportion z-test."""

from __future__ import annotations

import math

import pytest

from tomarena.analysis.stats import t_interval, two_proportion_z, wilson_interval
from tomarena.errors import ConfigError


def test_wilson_interval_matches_hand_values() -> None:
    # 8/10: centre (0.8 + z^2/20) / (1 + z^2/10), half-width z*sqrt(0.016 + z^2/400) / (1 + z^2/10)
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.490162, abs=1e-6)
    assert hi == pytest.approx(0.943318, abs=1e-6)
    lo0, hi0 = wilson_interval(0, 10)
    assert lo0 == 0.0 and hi0 == pytest.approx(3.841459 / 13.841459, abs=1e-6)  # z^2/(n+z^2)


def test_wilson_interval_edge_and_broken_counts() -> None:
    assert all(math.isnan(x) for x in wilson_interval(0, 0))
    with pytest.raises(ConfigError, match="n_cooperate=11, n_total=10"):
        wilson_interval(11, 10)


def test_t_interval_hand_value_and_degenerate_cases() -> None:
    mean, lo, hi = t_interval([1.0, 2.0, 3.0])  # sd 1, t(0.975, 2) = 4.302653
    assert mean == 2.0
    assert hi - mean == pytest.approx(4.302653 / math.sqrt(3), abs=1e-5)
    assert lo == pytest.approx(2 * mean - hi)
    assert t_interval([0.3, 0.3]) == (0.3, 0.3, 0.3)
    assert all(math.isnan(x) for x in t_interval([]))


def test_two_proportion_z_unpooled_against_hand_calculation() -> None:
    res = two_proportion_z(60, 100, 45, 100)
    se = math.sqrt(0.6 * 0.4 / 100 + 0.45 * 0.55 / 100)  # 0.0698212
    z = 0.15 / se
    assert res.difference == pytest.approx(0.15)
    assert res.statistic == pytest.approx(z) and z == pytest.approx(2.14834, abs=1e-5)
    assert res.p_value == pytest.approx(math.erfc(z / math.sqrt(2)))
    assert res.p_value == pytest.approx(0.03169, abs=1e-5)
    assert (res.ci_low, res.ci_high) == pytest.approx((0.15 - 1.959964 * se, 0.15 + 1.959964 * se), abs=1e-6)


def test_two_proportion_z_zero_variance_and_empty_sample() -> None:
    same = two_proportion_z(10, 10, 5, 5)
    assert same.p_value == 1.0 and same.statistic == 0.0
    apart = two_proportion_z(10, 10, 0, 5)
    assert apart.p_value == 0.0 and apart.statistic == math.inf
    with pytest.raises(ConfigError, match="n_a=0"):
        two_proportion_z(0, 0, 1, 2)

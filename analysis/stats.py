"""Small statistics: Wilson and t intervals, two-sample tests, seeded cluster bootstrap (numpy/scipy only)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tomarena.errors import ConfigError

Z95 = 1.959963984540054  # standard normal 97.5% quantile


@dataclass(frozen=True)
class TestResult:
    """A two-sample comparison: estimates, their difference (a - b), its 95% CI, statistic and two-sided p."""

    estimate_a: float
    estimate_b: float
    difference: float
    ci_low: float
    ci_high: float
    statistic: float
    p_value: float
    test: str

    def as_dict(self) -> dict[str, float | str]:
        """Plain dict (for tables and JSON)."""
        return asdict(self)


def _check_counts(k: float, n: float) -> None:
    if n < 0 or k < 0 or k > n:
        raise ConfigError(f"counts must satisfy 0 <= n_cooperate <= n_total, got n_cooperate={k}, n_total={n}")


def wilson_interval(k: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes out of n (NaN, NaN when n == 0)."""
    _check_counts(k, n)
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and t-based confidence interval of `values` (interval collapses to the mean for n=1 or sd=0)."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if x.size == 1 or float(x.std(ddof=1)) == 0.0:
        return (mean, mean, mean)
    half = float(stats.t.ppf(0.5 + level / 2, x.size - 1)) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return (mean, mean - half, mean + half)


def two_proportion_z(k_a: float, n_a: float, k_b: float, n_b: float, z: float = Z95) -> TestResult:
    """Two-sample z-test for p_a - p_b with the unpooled standard error; two-sided p and 95% CI."""
    from scipy import stats

    _check_counts(k_a, n_a)
    _check_counts(k_b, n_b)
    if n_a == 0 or n_b == 0:
        raise ConfigError(f"z-test needs at least one valid answer per sample, got n_a={n_a}, n_b={n_b}")
    pa, pb = k_a / n_a, k_b / n_b
    se = math.sqrt(pa * (1 - pa) / n_a + pb * (1 - pb) / n_b)
    diff = pa - pb
    if se == 0:
        stat = 0.0 if diff == 0 else math.copysign(math.inf, diff)
        p = 1.0 if diff == 0 else 0.0
    else:
        stat = diff / se
        p = float(2 * stats.norm.sf(abs(stat)))
    return TestResult(pa, pb, diff, diff - z * se, diff + z * se, stat, p, "two-proportion z (unpooled)")


def student_t_from_stats(mean_a: float, sd_a: float, n_a: float, mean_b: float, sd_b: float, n_b: float,
                         label: str = "Student t (equal variances)") -> TestResult:
    """Student's two-sample t-test (equal variances, as the study compared donations) from means, sample SDs and
    sizes; two-sided p and the 95% CI of mean_a - mean_b."""
    from scipy import stats

    if n_a < 2 or n_b < 2:
        raise ConfigError(f"Student t-test needs >= 2 values per sample, got {n_a} and {n_b}")
    df = n_a + n_b - 2
    pooled = ((n_a - 1) * sd_a**2 + (n_b - 1) * sd_b**2) / df
    se = math.sqrt(pooled * (1 / n_a + 1 / n_b))
    diff = mean_a - mean_b
    if se == 0:
        stat, p = (0.0, 1.0) if diff == 0 else (math.copysign(math.inf, diff), 0.0)
    else:
        stat = diff / se
        p = float(2 * stats.t.sf(abs(stat), df))
    half = float(stats.t.ppf(0.975, df)) * se
    return TestResult(mean_a, mean_b, diff, diff - half, diff + half, stat, p, label)


def student_t(a: Sequence[float], b: Sequence[float]) -> TestResult:
    """Student's two-sample t-test (equal variances) of mean(a) - mean(b) on raw values."""
    xa, xb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if xa.size < 2 or xb.size < 2:
        raise ConfigError(f"Student t-test needs >= 2 values per sample, got {xa.size} and {xb.size}")
    return student_t_from_stats(float(xa.mean()), float(xa.std(ddof=1)), xa.size, float(xb.mean()),
                                float(xb.std(ddof=1)), xb.size)


def cluster_bootstrap(sums: Any, counts: Any, statistic: Callable[[np.ndarray], np.ndarray] | None = None, *,
                      n_boot: int = 2000, seed: int = 0, chunk_cells: int = 4_000_000) -> np.ndarray:
    """Bootstrap replicates that resample whole clusters (matches) with a seeded rng: `sums` and `counts` hold one
    row per cluster (any trailing shape); a replicate is the ratio sum(w * sums) / sum(w * counts) per trailing cell
    (NaN where its count is 0), passed through `statistic` (vectorised over replicates) when given."""
    s, c = np.asarray(sums, dtype=float), np.asarray(counts, dtype=float)
    if s.shape != c.shape or s.ndim == 0:
        raise ConfigError(f"sums and counts must share one shape with a cluster axis, got {s.shape} and {c.shape}")
    n = s.shape[0]
    rng = np.random.default_rng(seed)
    flat_s, flat_c, out = s.reshape(n, -1), c.reshape(n, -1), []
    step = max(1, chunk_cells // max(n, 1))
    for start in range(0, n_boot, step):
        b = min(step, n_boot - start)
        idx = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
        w = np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = (w @ flat_s) / (w @ flat_c)
        ratio = ratio.reshape((b, *s.shape[1:]))
        out.append(statistic(ratio) if statistic is not None else ratio)
    return np.concatenate(out, axis=0)


def cluster_bootstrap_ci(sums: Any, counts: Any, statistic: Callable[[np.ndarray], np.ndarray] | None = None, *,
                         n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[Any, Any]:
    """Percentile CI of a cluster bootstrap (`cluster_bootstrap`): floats for a scalar statistic, else arrays of the
    trailing shape; replicates where the statistic is NaN are skipped; NaN where none is defined or no clusters."""
    s = np.asarray(sums, dtype=float)
    if s.ndim == 0 or s.shape[0] == 0:
        nan = math.nan if s.ndim <= 1 else np.full(s.shape[1:], math.nan)
        return (nan, nan)
    reps = cluster_bootstrap(s, counts, statistic, n_boot=n_boot, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells: a state no resample visits
        lo, hi = np.nanquantile(reps, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return (float(lo), float(hi)) if np.ndim(lo) == 0 else (lo, hi)

"""Per-scenario comparisons between two models, between a game and its doubled variant, and of donations, with the
statistics that fit how each number was obtained:

- sampled answers (method "counts", at least 2 per model): the study's two-proportion z-test (unpooled SE) and,
  for donations, Student's t-test (equal variances, as the study);
- exact probabilities (method "exact": one forward pass gives P(C), there is no sampling error): the exact
  difference, and a test only at an explicitly assumed sample size (`assume_n`, e.g. the study's 300), labelled
  as such. A test is never computed from one sampled action per scenario.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from tomarena.analysis.propensity import INVALID_STATUSES, donation_mask, no_probs
from tomarena.analysis.stats import TestResult, student_t, student_t_from_stats, two_proportion_z

TEST_FIELDS = ["estimate_a", "estimate_b", "difference", "ci_low", "ci_high", "statistic", "p_value", "test"]
MIN_SAMPLES = 2  # fewer sampled answers than this per model: no test
EXACT = "exact difference (no sampling error, no test)"


def _row(keys: dict[str, Any], res: TestResult) -> dict[str, Any]:
    d = res.as_dict()
    return {**keys, **{k: d[k] for k in TEST_FIELDS}}


def _exact(pa: float, pb: float, label: str = EXACT) -> TestResult:
    return TestResult(pa, pb, pa - pb, math.nan, math.nan, math.nan, math.nan, label)


def _sampled(row: Any) -> bool:
    return row.get("method", "counts") == "counts" and row["n_valid"] >= MIN_SAMPLES


def compare(ra: Any, rb: Any, assume_n: int | None = None) -> TestResult | None:
    """The comparison of two propensity rows (a minus b): z-test on real counts, else exact difference (plus a
    z-test at `assume_n` answers per model when given); None when neither has a usable value."""
    pa, pb = float(ra["p_cooperate"]), float(rb["p_cooperate"])
    if math.isnan(pa) or math.isnan(pb):
        return None
    if _sampled(ra) and _sampled(rb):
        return two_proportion_z(ra["n_cooperate"], ra["n_valid"], rb["n_cooperate"], rb["n_valid"])
    if assume_n:
        res = two_proportion_z(pa * assume_n, assume_n, pb * assume_n, assume_n)
        return dataclasses.replace(res, test=f"z (unpooled) at an assumed n={assume_n} per model")
    few = [int(r["n_valid"]) for r in (ra, rb) if r.get("method", "counts") == "counts" and not _sampled(r)]
    return _exact(pa, pb, f"difference only: {min(few)} sampled answer(s), too few for a test" if few else EXACT)


def model_tests(props: Any, model_a: str, model_b: str, assume_n: int | None = None) -> Any:
    """p(C) of model_a minus model_b in every scenario both have (see the module docstring for which test)."""
    import pandas as pd

    cols = ["framing", "game", "model_a", "model_b", *TEST_FIELDS]
    a = props[props["model"] == model_a].set_index(["framing", "game"])
    b = props[props["model"] == model_b].set_index(["framing", "game"])
    rows = []
    for key in a.index.intersection(b.index):
        res = compare(a.loc[key], b.loc[key], assume_n)
        if res is not None:
            rows.append(_row({"framing": key[0], "game": key[1], "model_a": model_a, "model_b": model_b}, res))
    return pd.DataFrame(rows, columns=cols)


def doubled_tests(props: Any, assume_n: int | None = None) -> Any:
    """p(C) in `<game>_doubled` minus `<game>` per model and framing (sensitivity to the payoff scale)."""
    import pandas as pd

    cols = ["model", "framing", "game", "doubled", *TEST_FIELDS]
    idx = props.set_index(["model", "framing", "game"])
    rows = []
    for (model, framing, game), r in idx.iterrows():
        key = (model, framing, f"{game}_doubled")
        if key in idx.index:
            res = compare(idx.loc[key], r, assume_n)
            if res is not None:
                rows.append(_row({"model": model, "framing": framing, "game": game, "doubled": key[2]}, res))
    return pd.DataFrame(rows, columns=cols)


def _donation_sample(frame: Any, model: str, framing: str) -> tuple[str, Any] | None:
    """('exact', mean distribution over amounts) when every valid row has probabilities, ('counts', values) when
    they were sampled, None when the model has no valid row."""
    df = frame[donation_mask(frame) & (frame["policy"] == model) & (frame["framing"] == framing)
               & ~frame["parse_status"].isin(INVALID_STATUSES)]
    if df.empty:
        return None
    probs = list(df["probs"])
    if all(not no_probs(p) for p in probs):
        return "exact", np.mean(np.stack([np.asarray(p, dtype=float) for p in probs]), axis=0)
    return "counts", df["intended_action"].to_numpy(dtype=float)


def _moments(dist: np.ndarray) -> tuple[float, float]:
    x = np.arange(dist.size)
    mean = float(dist @ x)
    return mean, float(math.sqrt(max(dist @ (x - mean) ** 2, 0.0)))


def donation_test(sa: tuple[str, Any], sb: tuple[str, Any], assume_n: int | None = None) -> TestResult | None:
    """Mean donation of a minus b: Student's t on sampled amounts (>= 2 each), else the exact difference of the
    expected amounts (plus Student's t at `assume_n` answers per model from the distributions' moments)."""
    if sa[0] == "counts" and sb[0] == "counts":
        if min(len(sa[1]), len(sb[1])) < MIN_SAMPLES:
            return None
        return student_t(sa[1], sb[1])
    (ma, sda), (mb, sdb) = (_moments(d) if kind == "exact" else (float(np.mean(d)), float(np.std(d, ddof=1)))
                            for kind, d in (sa, sb))
    if assume_n:
        return student_t_from_stats(ma, sda, assume_n, mb, sdb, assume_n,
                                    f"Student t at an assumed n={assume_n} per model")
    return _exact(ma, mb)


def donation_tests(frame: Any, model_a: str, model_b: str, assume_n: int | None = None) -> Any:
    """Mean contribution of model_a minus model_b per framing of the donation game(s)."""
    import pandas as pd

    cols = ["framing", "model_a", "model_b", *TEST_FIELDS]
    rows = []
    framings = sorted(frame.loc[frame["policy"].isin([model_a, model_b]), "framing"].unique())
    for framing in framings:
        sa, sb = _donation_sample(frame, model_a, framing), _donation_sample(frame, model_b, framing)
        res = donation_test(sa, sb, assume_n) if sa and sb else None
        if res is not None:
            rows.append(_row({"framing": framing, "model_a": model_a, "model_b": model_b}, res))
    return pd.DataFrame(rows, columns=cols)

"""Per-scenario significance tables: z-tests between two models, between a game and its doubled variant, and
Welch t-tests of donations between models."""

from __future__ import annotations

from typing import Any

from tomarena.analysis.stats import two_proportion_z, welch_t

TEST_FIELDS = ["estimate_a", "estimate_b", "difference", "ci_low", "ci_high", "statistic", "p_value"]


def _row(keys: dict[str, Any], res: Any) -> dict[str, Any]:
    d = res.as_dict()
    return {**keys, **{k: d[k] for k in TEST_FIELDS}}


def model_tests(props: Any, model_a: str, model_b: str) -> Any:
    """Two-proportion z-test of p(C) of model_a minus model_b in every scenario both have valid answers for."""
    import pandas as pd

    cols = ["framing", "game", "model_a", "model_b", *TEST_FIELDS]
    a = props[props["model"] == model_a].set_index(["framing", "game"])
    b = props[props["model"] == model_b].set_index(["framing", "game"])
    rows = []
    for key in a.index.intersection(b.index):
        ra, rb = a.loc[key], b.loc[key]
        if ra["n_valid"] > 0 and rb["n_valid"] > 0:
            res = two_proportion_z(ra["n_cooperate"], ra["n_valid"], rb["n_cooperate"], rb["n_valid"])
            rows.append(_row({"framing": key[0], "game": key[1], "model_a": model_a, "model_b": model_b}, res))
    return pd.DataFrame(rows, columns=cols)


def doubled_tests(props: Any) -> Any:
    """z-test of p(C) in `<game>_doubled` minus `<game>` per model and framing (sensitivity to payoff scale)."""
    import pandas as pd

    cols = ["model", "framing", "game", "doubled", *TEST_FIELDS]
    idx = props.set_index(["model", "framing", "game"])
    rows = []
    for (model, framing, game), r in idx.iterrows():
        key = (model, framing, f"{game}_doubled")
        if key in idx.index and r["n_valid"] > 0 and idx.loc[key, "n_valid"] > 0:
            d = idx.loc[key]
            res = two_proportion_z(d["n_cooperate"], d["n_valid"], r["n_cooperate"], r["n_valid"])
            rows.append(_row({"model": model, "framing": framing, "game": game, "doubled": key[2]}, res))
    return pd.DataFrame(rows, columns=cols)


def donation_tests(frame: Any, model_a: str, model_b: str) -> Any:
    """Welch t-test of contributions of model_a minus model_b per framing of the donation game(s)."""
    import pandas as pd

    from tomarena.analysis.propensity import donation_values

    cols = ["framing", "model_a", "model_b", *TEST_FIELDS]
    rows = []
    framings = sorted(frame.loc[frame["policy"].isin([model_a, model_b]), "framing"].unique())
    for framing in framings:
        va, vb = donation_values(frame, model_a, framing), donation_values(frame, model_b, framing)
        if len(va) >= 2 and len(vb) >= 2:
            rows.append(_row({"framing": framing, "model_a": model_a, "model_b": model_b}, welch_t(va, vb)))
    return pd.DataFrame(rows, columns=cols)

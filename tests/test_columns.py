"""analysis.columns: group iteration over categorical keys yields exactly what pandas' groupby yields (keys, order,
rows), one group at a time; str_categorical sorts and merges categories as their str values would."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tomarena.analysis.columns import groups, str_categorical


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "model": pd.Categorical(["b", "a", "b", "a", "b", "a"], categories=["b", "a", "unused"]),
        "game": pd.Categorical(["pd", "pd", "sh", "sh", "pd", "pd"]),
        "coop": [1, 0, 1, 1, 0, 1],
        "round": [1, 1, 1, 1, 2, 2],
    })


def _same(ours: list, theirs: list) -> None:
    assert [k for k, _ in ours] == [k for k, _ in theirs]
    for (_, a), (_, b) in zip(ours, theirs, strict=True):
        pd.testing.assert_frame_equal(a, b)


def test_groups_equal_pandas_groupby_over_categorical_keys() -> None:
    df = _frame()
    ours = list(groups(df, ["model", "game"], ["coop", "round"]))
    theirs = list(df.groupby(["model", "game"], sort=True, observed=True)[["coop", "round"]])
    _same(ours, theirs)
    assert [k for k, _ in ours] == [("b", "pd"), ("b", "sh"), ("a", "pd"), ("a", "sh")]  # category order
    assert ours[0][1]["round"].tolist() == [1, 2]  # rows keep their order within a group


def test_groups_with_one_group_missing_keys_or_plain_columns_fall_back_to_groupby() -> None:
    df = _frame()
    one = list(groups(df[df["model"] == "a"], ["model"], ["coop"]))
    assert [k for k, _ in one] == [("a",)] and one[0][1]["coop"].tolist() == [0, 1, 1]
    holes = df.assign(model=df["model"].cat.set_categories(["a"]))  # "b" becomes missing: groupby drops it
    _same(list(groups(holes, ["model"], ["coop"])), list(holes.groupby(["model"], sort=True, observed=True)[["coop"]]))
    plain = df.assign(model=df["model"].astype(str))
    _same(list(groups(plain, ["model"], ["coop"])), list(plain.groupby(["model"], sort=True, observed=True)[["coop"]]))
    assert list(groups(df.iloc[:0], ["model"], ["coop"])) == []


def test_str_categorical_sorts_and_merges_as_str() -> None:
    col = pd.Series(pd.Categorical([10, 2, 10, 3], categories=[2, 3, 10]))
    cat = str_categorical(col)
    assert list(cat.categories) == ["10", "2", "3"]  # str order, not numeric
    assert list(cat.astype(str)) == ["10", "2", "10", "3"]
    rows = str_categorical(col, np.array([1, 3]))
    assert list(rows.astype(str)) == ["2", "3"]
    mixed = pd.Series(pd.Categorical([1, "1", 2], categories=[1, "1", 2]))
    assert list(str_categorical(mixed).categories) == ["1", "2"]  # equal as str: one category
    assert list(str_categorical(pd.Series(["y", "x"])).categories) == ["x", "y"]

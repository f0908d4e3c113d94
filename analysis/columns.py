"""Columns of large trace frames (millions of rows) as str without a Python object per row: a loaded frame's string
columns are categoricals (analysis.load), so their values are recoded through their few categories."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np


def run_column(frame: Any) -> str:
    """The column naming the run a row came from: its run directory when loaded from disk, else its run id."""
    return "run_dir" if "run_dir" in frame.columns else "run_id"


def str_categorical(column: Any, rows: np.ndarray | None = None) -> Any:
    """column.astype(str) (only the positions `rows`, when given) as a pd.Categorical whose categories are the sorted
    str values: grouping on it with sort=True orders groups as grouping on the str column would."""
    import pandas as pd

    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = column.cat.codes.to_numpy()
        codes = codes if rows is None else codes[rows]
        labels = np.asarray(column.cat.categories.astype(str), dtype=object)
        if len(labels) and not (codes < 0).any():
            names, inverse = np.unique(labels, return_inverse=True)  # categories equal as str become one
            return pd.Categorical.from_codes(inverse.astype(codes.dtype)[codes], categories=names)
    values = column if rows is None else column.iloc[rows]
    return pd.Categorical(values.astype(str).to_numpy(dtype=object))


def groups(frame: Any, keys: list[str], columns: list[str]) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """(key values, the group's rows of `columns`) per observed group of `frame` over `keys`, as iterating
    frame.groupby(keys, sort=True, observed=True)[columns] yields them; over categorical keys one group is copied at
    a time (the groupby first copies every row in group order) and a group of every row not at all."""
    import pandas as pd

    if not len(frame):
        return
    if not all(isinstance(frame[k].dtype, pd.CategoricalDtype) for k in keys) or any(
            (frame[k].cat.codes < 0).any() for k in keys):  # other keys, or missing values the groupby drops
        yield from frame.groupby(keys, sort=True, observed=True)[columns]
        return
    cats = [frame[k].cat for k in keys]
    group = np.zeros(len(frame), dtype=np.int64)
    for cat in cats:  # groups sort as groupby sorts categoricals: by category order
        group = group * len(cat.categories) + cat.codes.to_numpy()
    sizes = np.bincount(group)
    if np.count_nonzero(sizes) == 1:
        yield tuple(cat.categories[cat.codes.iloc[0]] for cat in cats), frame[columns]
        return
    order = np.argsort(group, kind="stable")  # rows of each group together, in their order
    del group
    ends = np.cumsum(sizes)
    for g in np.flatnonzero(sizes):
        key, rest = [], int(g)
        for cat in reversed(cats):
            rest, code = divmod(rest, len(cat.categories))
            key.insert(0, cat.categories[code])
        yield tuple(key), frame[columns].take(order[ends[g] - sizes[g]:ends[g]])

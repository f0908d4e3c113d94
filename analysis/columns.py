"""Columns of large trace frames (millions of rows) as str without a Python object per row: a loaded frame's string
columns are categoricals (analysis.load), so their values are recoded through their few categories."""

from __future__ import annotations

from typing import Any

import numpy as np


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

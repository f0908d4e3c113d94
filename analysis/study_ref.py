"""The study's own alignment figures, computed from the shipped counts (tomarena.study) by the same code as a run's:
LLaMa-2-7b (base) -> its LoRA fine-tune (student), against LLaMa-2-70b (teacher). Every alignment table tomarena
prints stands beside these."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from tomarena import study
from tomarena.analysis import alignment, transfer

ROLES = {"base": "llama2-7b", "student": "llama2-7b-lora", "teacher": "llama2-70b"}


def propensities(raw: bool = False) -> Any:
    """The study's one-shot P(C) per model x framing x game as a propensity table (n_valid = answers counted;
    `raw` divides by 300 as the study's notebooks did)."""
    import pandas as pd

    df = pd.DataFrame(study.propensity_rows(raw))
    return df.assign(n_valid=df["n_total"])


def donations() -> Any:
    """The study's mean donation per model, as a donation table (framing 'none', game 'donation')."""
    import pandas as pd

    return pd.DataFrame(study.donation_rows())


def scenario_table(raw: bool = False, roles: dict[str, str] | None = None,
                   min_gap: float = alignment.MIN_GAP) -> Any:
    """Per-scenario alignment of the study's models (every set; the donation game when all three models played
    it); no scenario is excluded unless `min_gap` > 0."""
    import pandas as pd

    r = roles or ROLES
    args = (r["base"], r["student"], r["teacher"])
    for model in args:
        study.check_model(model)
    parts = [alignment.scenario_table(propensities(raw), *args, min_gap=min_gap)]
    if all(m in study.donation_counts() for m in args):
        endowment = study.DONATION_ENDOWMENT
        parts.append(alignment.scenario_table(donations(), *args, value="mean_contribution", binary=False,
                                              min_gap=min_gap * endowment,
                                              small_gap=alignment.SMALL_GAP * endowment).assign(set="donation"))
    return alignment.donation_sizes_cleared(pd.concat(parts, ignore_index=True))


def donation_samples(roles: dict[str, str] | None = None) -> dict[str, dict[str, np.ndarray]]:
    """{"donation": {role: every recorded answer}} for the two-level bootstrap (empty when a role has none)."""
    r = roles or ROLES
    if not all(r[k] in study.donation_counts() for k in transfer.ROLES):
        return {}
    return {"donation": {k: np.array(study.donation_values(r[k])) for k in transfer.ROLES}}


def transfer_rows(raw: bool = False, roles: dict[str, str] | None = None, seed: int = 0, prefix: str = "") -> Any:
    """The transfer table (analysis.transfer) of the study's models: trained on the 20 in-sample scenarios, so that
    set is a training fit; every count resampled binomially, donations from the recorded answers."""
    return transfer.transfer_table(scenario_table(raw, roles), training_fit=["in_sample"],
                                   samples=donation_samples(roles), donation_scale=study.DONATION_ENDOWMENT,
                                   prefix=prefix, seed=seed)


@cache
def study_transfer(seed: int = 0) -> Any:
    """The study's own transfer table with `who` prefixed "study" (cached: the data never change)."""
    return transfer_rows(seed=seed, prefix="study")

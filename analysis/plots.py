"""Figures (matplotlib, Agg backend, imported lazily): p(C) heatmaps, the study's Fig. 2 bars, improvement
heatmap, memory-one fingerprints, cooperation over rounds and the cross-play matrix. Each writes one PNG."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def short(label: object, width: int = 38) -> str:
    """A label cut to `width` characters (long policy specs with paths would crush the axes)."""
    text = str(label)
    return text if len(text) <= width else text[:width // 2 - 1] + "…" + text[-(width // 2 - 1):]


def _save(fig: Any, path: Path) -> Path:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # tight_layout on crowded figures: the PNG is still fine
        fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def _heat(ax: Any, table: Any, cmap: str, vmin: float | None, vmax: float | None, fmt: str) -> Any:
    data = table.to_numpy(dtype=float)
    im = ax.imshow(data, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(table.shape[1]), [short(c) for c in table.columns], rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(table.shape[0]), [short(i) for i in table.index], fontsize=8)
    for (i, j), v in np.ndenumerate(data):
        if np.isfinite(v):
            ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=7)
    return im


def propensity_heatmap(props: Any, model: str, path: Path) -> Path:
    """p(C) of one model, framing (rows) x game (columns)."""
    plt = _plt()
    t = props[props["model"] == model].pivot_table(index="framing", columns="game", values="p_cooperate")
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * t.shape[1], 1.2 + 0.45 * t.shape[0]))
    fig.colorbar(_heat(ax, t, "RdYlGn", 0.0, 1.0, ".2f"), ax=ax, label="p(C)")
    ax.set_title(f"p(C): {short(model, 60)}", fontsize=9)
    return _save(fig, path)


def role_bars(props: Any, roles: Mapping[str, str], by: str, path: Path) -> Path:
    """Mean p(C) by framing or by game for base, fine-tuned student and teacher (the study's Fig. 2 shape)."""
    plt = _plt()
    order = [r for r in ("base", "student", "teacher") if roles.get(r)]
    sub = props[props["model"].isin([roles[r] for r in order])]
    t = sub.groupby([by, "model"])["p_cooperate"].mean().unstack("model")
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(t) + 2), 3.2))
    width = 0.8 / max(1, len(order))
    for k, role in enumerate(order):
        vals = t[roles[role]] if roles[role] in t else np.full(len(t), np.nan)
        offset = (k - (len(order) - 1) / 2) * width
        ax.bar(np.arange(len(t)) + offset, vals, width, label=f"{role}: {short(roles[role])}")
    ax.set_xticks(range(len(t)), [str(i) for i in t.index], rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.25)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_ylabel("p(C)")
    ax.set_title(f"Propensity to cooperate by {by}", fontsize=9)
    ax.legend(fontsize=7, ncol=3, loc="upper center")
    return _save(fig, path)


def improvement_heatmap(scenarios: Any, path: Path) -> Path:
    """Per-scenario improvement (%) framing x game; scenarios without one (zero or excluded gap) stay blank."""
    plt = _plt()
    t = scenarios[scenarios["set"] != "donation"].pivot_table(index="framing", columns="game", values="improvement",
                                                              dropna=False)
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * max(1, t.shape[1]), 1.2 + 0.45 * max(1, t.shape[0])))
    fig.colorbar(_heat(ax, t, "coolwarm_r", -100.0, 200.0, ".0f"), ax=ax, label="improvement %")
    ax.set_title("Alignment improvement (colours clipped to -100..200; blank = zero/excluded gap)", fontsize=9)
    return _save(fig, path)


def fingerprint_plot(fp: Any, path: Path) -> Path:
    """Memory-one fingerprints: P(C | CC, CD, DC, DD) per model as grouped bars."""
    plt = _plt()
    t = fp.pivot_table(index="model", columns="state", values="p_cooperate").reindex(columns=["CC", "CD", "DC", "DD"])
    fig, ax = plt.subplots(figsize=(max(4.0, 1.0 * len(t) + 2), 3.2))
    for k, state in enumerate(t.columns):
        ax.bar(np.arange(len(t)) + (k - 1.5) * 0.2, t[state], 0.2, label=f"P(C|{state})")
    ax.set_xticks(range(len(t)), [str(i) for i in t.index], rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.25)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.legend(fontsize=7, ncol=4, loc="upper center")
    ax.set_title("Memory-one fingerprints (own, co-player previous action)", fontsize=9)
    return _save(fig, path)


def rounds_plot(by_round: Any, path: Path) -> Path:
    """Cooperation over rounds, one line per model x game."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for (model, game), g in by_round.groupby(["model", "game"]):
        ax.plot(g["round"], g["p_cooperate"], marker=".", label=f"{short(model)} / {game}")
    ax.set_xlabel("round")
    ax.set_ylabel("p(C)")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=6)
    ax.set_title("Cooperation over rounds", fontsize=9)
    return _save(fig, path)


def crossplay_plot(matrix: Any, game: str, path: Path) -> Path:
    """Cross-play matrix: mean payoff per round of the row policy against the column opponent."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(2 + 0.9 * matrix.shape[1], 1.5 + 0.5 * matrix.shape[0]))
    fig.colorbar(_heat(ax, matrix, "viridis", None, None, ".2f"), ax=ax, label="mean payoff / round")
    ax.set_xlabel("opponent")
    ax.set_title(f"Cross-play payoffs: {game}", fontsize=9)
    return _save(fig, path)

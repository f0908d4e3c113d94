"""Figures (matplotlib, Agg backend, imported lazily): p(C) heatmaps, the study's Fig. 2 bars, improvement
heatmap, the transfer at a glance (base and student against the teacher), memory-one fingerprints, cooperation over
rounds, the cross-play matrix and the score per Robinson-Goforth family. Each writes one PNG; legends are saved
inside it (bbox_inches='tight')."""

from __future__ import annotations

import warnings
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # tight_layout on crowded figures: the PNG is still fine
        if fig.get_layout_engine() is None:
            fig.tight_layout()
        fig.savefig(path, dpi=110, bbox_inches="tight", pad_inches=0.1)  # legends outside the axes stay in
    _plt().close(fig)
    return path


def text_colour(rgba: Any) -> str:
    """Black or white, whichever reads better on a cell of colour `rgba` (WCAG relative luminance)."""
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgba[:3]]
    lum = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    return "black" if lum > 0.179 else "white"


def _heat(ax: Any, table: Any, cmap: str, vmin: float | None, vmax: float | None, fmt: str) -> Any:
    data = table.to_numpy(dtype=float)
    im = ax.imshow(data, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(table.shape[1]), [short(c) for c in table.columns], rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(table.shape[0]), [short(i) for i in table.index], fontsize=8)
    if table.columns.name:
        ax.set_xlabel(str(table.columns.name))
    if table.index.name:
        ax.set_ylabel(str(table.index.name))
    for (i, j), v in np.ndenumerate(data):
        if np.isfinite(v):
            ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=7, color=text_colour(im.cmap(im.norm(v))))
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
    ax.set_xlabel(by)
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


STATES = ("CC", "CD", "DC", "DD")


def fingerprint_plot(fp: Any, path: Path) -> Path:
    """Memory-one fingerprints: P(C | CC, CD, DC, DD) per model as grouped bars; a state the model never visited is a
    hatched grey bar (no data), distinct from P(C) = 0 (a short black tick on the axis)."""
    plt = _plt()
    t = fp.pivot_table(index="model", columns="state", values="p_cooperate").reindex(columns=list(STATES))
    fig, ax = plt.subplots(figsize=(max(4.5, 1.0 * len(t) + 2.5), 3.4))
    x = np.arange(len(t))
    for k, state in enumerate(STATES):
        pos, vals = x + (k - 1.5) * 0.2, t[state].to_numpy(dtype=float)
        ax.bar(pos, np.nan_to_num(vals), 0.2, label=f"P(C|{state})", color=f"C{k}")
        seen = np.isfinite(vals)
        ax.scatter(pos[seen], vals[seen], marker="_", s=60, color="black", linewidths=1.2, zorder=3)
        if (~seen).any():
            ax.bar(pos[~seen], np.ones((~seen).sum()), 0.2, color="0.88", edgecolor="0.45", hatch="///",
                   linewidth=0.6, label="never visited" if "never visited" not in _labels(ax) else "_")
    ax.set_xticks(range(len(t)), [short(i) for i in t.index], rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.02)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_xlabel("model")
    ax.set_ylabel("P(C | previous outcome)")
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: labels[i] == "never visited")  # "never visited" last
    ax.legend([handles[i] for i in order], [labels[i] for i in order], fontsize=7, loc="upper left",
              bbox_to_anchor=(1.01, 1.0), title="own, co-player", title_fontsize=7)
    ax.set_title("Memory-one fingerprints (tick = value; hatched = state never visited)", fontsize=9)
    return _save(fig, path)


def _labels(ax: Any) -> list[str]:
    return ax.get_legend_handles_labels()[1]


MAX_MARKERS = 25


def rounds_plot(by_round: Any, path: Path) -> Path:
    """Cooperation over rounds, one line per model x game; markers thinned to at most MAX_MARKERS per line."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    for (model, game), g in by_round.groupby(["model", "game"]):
        g = g.sort_values("round")
        every = max(1, -(-len(g) // MAX_MARKERS))
        ax.plot(g["round"], g["p_cooperate"], marker=".", markevery=every, linewidth=1.0,
                label=f"{short(model)} / {game}")
    ax.set_xlabel("round")
    ax.set_ylabel("p(C)")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    ax.set_title("Cooperation over rounds (framings pooled)", fontsize=9)
    return _save(fig, path)


def transfer_plot(scenarios: Any, roles: Mapping[str, str], path: Path) -> Path:
    """The transfer at a glance: per scenario set, p_base (hollow) and p_student (filled) against p_teacher, joined
    by an arrow per scenario; on the diagonal a model matches the teacher (donations: mean contribution)."""
    plt = _plt()
    order = ("in_sample", "oos_framings", "oos_games", "donation")
    present = list(dict.fromkeys(scenarios["set"]))
    sets = [s for s in order if s in present] + [s for s in present if s not in order]
    n = max(1, len(sets))
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 3.0 * rows + 0.6), squeeze=False, layout="constrained")
    for ax, name in zip(axes.flat, sets):
        _transfer_panel(ax, scenarios[scenarios["set"] == name], name, roles)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=7, frameon=False)
    fig.suptitle("Base and student against the teacher, per scenario (on the diagonal = as the teacher)", fontsize=9)
    return _save(fig, path)


def _transfer_panel(ax: Any, t: Any, name: str, roles: Mapping[str, str]) -> None:
    donation = name == "donation"
    lo, top = -0.02, 1.02
    if donation:
        peak = np.nanmax(t[["p_base", "p_student", "p_teacher"]].to_numpy(dtype=float), initial=0.0)
        lo, top = 0.0, float(peak) * 1.05 if peak > 0 else 1.0
    ax.plot([lo, top], [lo, top], color="0.6", linewidth=0.8, linestyle="--", zorder=1, label="= teacher")
    for r in t.itertuples(index=False):
        ax.annotate("", xy=(r.p_teacher, r.p_student), xytext=(r.p_teacher, r.p_base),
                    arrowprops={"arrowstyle": "->", "color": "0.55", "linewidth": 0.7}, zorder=2)
    ax.scatter(t["p_teacher"], t["p_base"], s=26, facecolors="none", edgecolors="C0", linewidths=1.1, zorder=3,
               label=f"base: {short(roles.get('base', ''), 30)}")
    ax.scatter(t["p_teacher"], t["p_student"], s=22, color="C3", zorder=4,
               label=f"student: {short(roles.get('student', ''), 30)}")
    ax.set_xlim(lo, top)
    ax.set_ylim(lo, top)
    ax.set_aspect("equal", adjustable="box")
    what = "mean contribution" if donation else "P(C)"
    ax.set_xlabel(f"teacher {what}", fontsize=8)
    ax.set_ylabel(f"model {what}", fontsize=8)
    ax.tick_params(labelsize=7)
    imp = t.loc[~t["excluded"].astype(bool), "improvement"].mean()
    extra = f", improvement {imp:.0f}%" if np.isfinite(imp) else ""
    ax.set_title(f"{name} ({len(t)} scenario{'s' if len(t) != 1 else ''}{extra})", fontsize=8)


def crossplay_plot(matrix: Any, game: str, path: Path) -> Path:
    """Cross-play matrix: mean payoff per round of the row policy against the column opponent."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(2 + 0.9 * matrix.shape[1], 1.5 + 0.5 * matrix.shape[0]))
    fig.colorbar(_heat(ax, matrix, "viridis", None, None, ".2f"), ax=ax, label="mean payoff / round")
    ax.set_xlabel("opponent")
    ax.set_ylabel("policy")
    ax.set_title(f"Cross-play payoffs: {game}", fontsize=9)
    return _save(fig, path)


def family_score_plot(scores: Any, path: Path) -> Path:
    """Score relative to the seat's maximum payoff, policy (rows) x Robinson-Goforth family (columns, the study's
    order as given), from a pivot of rg_findings.family_scores."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(2.5 + 1.0 * scores.shape[1], 1.3 + 0.45 * scores.shape[0]))
    fig.colorbar(_heat(ax, scores, "RdYlGn", None, None, ".2f"), ax=ax, label="points / seat maximum")
    ax.set_title("Score relative to the best achievable, per game family", fontsize=9)
    return _save(fig, path)

"""`tomarena report`: every analysis of one or more runs as CSV tables, PNG figures, report.md and a
self-contained report.html, plus the headline alignment figures. The report opens with the summary (alignment per
scenario set beside the study's own, and the transfer figure); the long tables follow, folded. Re-running into the
same directory first removes the files the previous report wrote (listed in DIR/.tomarena-report-files), never
anything else."""

from __future__ import annotations

import difflib
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tomarena.analysis import (
    alignment,
    comparisons,
    equilibria,
    evolution,
    plots,
    propensity,
    provenance,
    repeated,
    rg_findings,
    standings,
    study_ref,
    tournament,
    transfer,
)
from tomarena.analysis.load import load_runs, read_manifest, roles_from_manifests, shard_paths
from tomarena.analysis.render import Section, to_html, to_markdown
from tomarena.analysis.training_fit import TrainingRecord
from tomarena.errors import ConfigError

MAX_HEATMAPS = 12
MAX_GAME_PLOTS = 12  # per-game figures (cross-play, heatmap columns, lines over rounds) for at most this many games
ASSUME_N = 300  # exact probabilities: the test shown is the one the study's 300 samples per model would give
FILES_LIST = ".tomarena-report-files"  # the names the last report wrote into DIR: what the next one may remove
PROGRESS_ROWS = 200_000  # from this many trace rows on, each step prints a line on stderr
REPEATED_BOOT = 1000  # match-bootstrap draws of the repeated-play intervals


@dataclass
class Report:
    """What `build_report` wrote: the output paths, the roles used and the headline per scenario set."""

    out: Path
    html: Path
    markdown: Path
    files: list[Path] = field(default_factory=list)
    roles: dict[str, str] = field(default_factory=dict)
    headline: dict[str, dict[str, Any]] = field(default_factory=dict)


class _Writer:
    """Collects CSVs and PNGs in the output directory, recording every name in DIR/FILES_LIST as it goes (so a
    report that fails half-way still leaves a list the next run can clean)."""

    def __init__(self, out: Path) -> None:
        self.out, self.files = out, []

    def record(self, path: Path) -> Path:
        """Add `path` to the written files and to DIR/FILES_LIST."""
        self.files.append(path)
        names = sorted({p.name for p in self.files} | {"report.md", "report.html"})
        (self.out / FILES_LIST).write_text(json.dumps(names, indent=0) + "\n", encoding="utf-8")
        return path

    def csv(self, name: str, table: Any) -> Any:
        """Write `table` as DIR/name.csv and return it unchanged."""
        path = self.out / f"{name}.csv"
        keep_index = bool(table.index.name or any(table.index.names))
        table.to_csv(path, index=keep_index, float_format="%.10g")
        self.record(path)
        return table

    def png(self, name: str, fn: Any, *args: Any) -> Path:
        """Draw DIR/name.png with the plotting function `fn`."""
        return self.record(fn(*args, self.out / f"{name}.png"))


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80]


def shown_games(games: Any, limit: int = MAX_GAME_PLOTS) -> list[str]:
    """The games a report draws per-game figures for: the first `limit` in natural order (rg144/2 before
    rg144/10); the rest are summarised in tables."""
    return sorted(map(str, set(games)), key=standings.natural_key)[:limit]


def _capped(n_games: int, what: str) -> str:
    """The sentence that says a figure shows only the first MAX_GAME_PLOTS of `n_games` games ("" when all)."""
    if n_games <= MAX_GAME_PLOTS:
        return ""
    return (f" {what} show the first {MAX_GAME_PLOTS} of the {n_games} games (in name order); the tables and CSVs "
            "hold every game.")


def _propensity_section(w: _Writer, frame: Any, props: Any, roles: Mapping[str, str]) -> list[Section]:
    don = w.csv("donations", propensity.donation_table(propensity.scenario_rows(frame)))
    w.csv("propensities", props)
    drawn = props[props["game"].isin(shown_games(props["game"]))] if len(props) else props
    figs = [w.png(f"heatmap_{_safe(m)}", plots.propensity_heatmap, drawn, m)
            for m in sorted(props["model"].unique())[:MAX_HEATMAPS]]
    if sum(1 for r in ("base", "student", "teacher") if roles.get(r) in set(props["model"])) >= 2:
        figs += [w.png(f"bars_by_{by}", plots.role_bars, props, roles, by) for by in ("framing", "game")]
    text = ("p(C) per model x framing x game (one-shot sweep rows when the runs have any; repeated play is "
            "analysed below). method 'exact' = mean of the scored probability of C; 'counts' = "
            "C answers / valid answers with a Wilson 95% CI. Exact p(C) = P(first token C | first token C or D) "
            "under the letter prompt; other_mass = the mean probability on neither letter (format adherence). "
            "Invalid (failed / fallback) answers are counted in "
            f"n_invalid: {int(props['n_invalid'].sum()) if len(props) else 0} in all; n_valid is the number of "
            "decisions behind each p(C)." + _capped(props["game"].nunique() if len(props) else 0, "The heatmaps"))
    tables = [("Propensities", props)] + ([("Donation game: mean contribution", don)] if len(don) else [])
    return [Section("Propensity to cooperate", text, tables, figs, collapsed=True)]


def _alignment_section(w: _Writer, frame: Any, props: Any, roles: Mapping[str, str], min_gap: float,
                       seed: int, training: TrainingRecord | None) -> tuple[Section, list[Section],
                                                                            dict[str, dict[str, Any]]]:
    """(the summary section that opens the report, the folded detail sections, the headline per set)."""
    import pandas as pd

    present = set(propensity.scenario_rows(frame)["policy"].unique())
    missing = [r for r in ("teacher", "base", "student") if roles.get(r) not in present]
    if missing:
        labels = ", ".join(sorted(map(str, present))) or "none"
        note = (f"Skipped alignment: roles {', '.join(missing)} are not set or have no one-shot rows "
                "(pass --teacher/--base/--student or set 'roles' in the manifest; labels with one-shot rows: "
                f"{labels}).")
        return Section("Summary", note), [], {}
    study_rows = study_ref.study_transfer(seed)
    res = alignment.evaluate(frame, roles, training=training, min_gap=min_gap, seed=seed, study_rows=study_rows)
    scen = w.csv("alignment_scenarios", res.scenarios)
    w.csv("alignment", pd.concat([res.rows, study_rows], ignore_index=True))
    sums = alignment.summarize_sets(scen)
    summary = w.csv("alignment_summary", pd.DataFrame([{"set": s, **v} for s, v in sums.items()]))
    tests = [w.csv(f"ztest_{a}_vs_{b}", pair_counts(comparisons.model_tests(props, roles[a], roles[b],
                                                                         assume_n=ASSUME_N), props))
             for a, b in (("student", "base"), ("student", "teacher"))]
    don = w.csv("donation_tests", comparisons.donation_tests(frame, roles["student"], roles["base"],
                                                             assume_n=ASSUME_N))
    binary = scen[scen["set"] != "donation"]
    has_improvement = binary["improvement"].notna().any()
    figs = [w.png("improvement_heatmap", plots.improvement_heatmap, scen)] if has_improvement else []
    transfer_fig = [w.png("transfer", plots.transfer_plot, scen, roles)] if len(scen) else []
    excluded = (f"scenarios with |gap| < {min_gap} are left out of the mean and median (excluded)" if min_gap
                else "every scenario counts, as in the study")
    text = ("Improvement = 100*(p_ft - p_base)/(p_teacher - p_base) per scenario, averaged over the scenarios of a "
            f"set; {excluded}; small_gap marks |gap| < {alignment.SMALL_GAP}, where the ratio is unstable. Gap "
            "closure = 1 - mean|s - t| / mean|b - t|; JSD in bits. alignment.csv holds every metric of the student, "
            "the base and the null students (and the study's, who = study*) with 95% two-level bootstrap intervals "
            f"(scenarios resampled, and within each scenario the answers of sampled estimates; seed {seed}). "
            "n_base/n_student/n_teacher: answers behind a sampled estimate (empty = exact probability, no sampling "
            "error); n_a/n_b in the tests: the decisions behind estimate_a/estimate_b. Tests: sampled answers get the "
            "study's two-proportion z-test (unpooled) and Student's t on donations; exactly scored probabilities "
            "have no sampling error, so their difference is exact and the "
            f"test shown is the one {ASSUME_N} samples per model would give at those probabilities (labelled in the "
            "'test' column).")
    tables = [("Every metric with its interval (alignment.csv)", res.rows),
              ("Point figures per scenario set", summary), ("Per scenario", scen),
              ("student - base", tests[0]), ("student - teacher", tests[1])]
    tables += [("Donations: student - base", don)] if len(don) else []
    lead = (f"Alignment of the student ({roles['student']}) with the teacher ({roles['teacher']}), starting from the "
            f"base ({roles['base']}), per scenario set, beside the study's own figures (LLaMa-2-7b -> its LoRA "
            "student vs the 70b teacher, from the shipped counts, by this same code). A student transfers only "
            "where it beats every null student computed by the same code: the base, a constant at the teacher's "
            "mean over the training scenarios, and the teacher's mean per training framing. The margin is the "
            "student's gap closure minus the best null's, with a paired 95% interval. r within framing (game) "
            "removes each framing's (game's) mean first: does the student read the game (the framing)? A set marked "
            "'training fit' was evaluated on the very prompts the student was trained on: it measures fitting, not "
            "transfer. In the figure each arrow runs from the base to the student for one scenario; on the dashed "
            "diagonal a model answers as the teacher does.")
    head = Section("Summary", lead, [("Alignment per scenario set, beside the null students and the study's own",
                                      transfer.headline_frame(res.headline))], transfer_fig)
    return head, [Section("Alignment with the teacher", text, tables, figs, collapsed=True)], res.headline


def cell_counts(table: Any, props: Any, *, model: str = "model", game: str = "game", name: str = "n",
                after: str = "p_cooperate") -> Any:
    """`table` with column `name` inserted after `after`: the valid decisions (n_valid) of the propensity cell
    (model, framing, game) each row reads in `props` (empty where the cell is missing)."""
    import pandas as pd

    lookup = {(str(m), str(f), str(g)): int(n) for m, f, g, n in
              zip(props["model"], props["framing"], props["game"], props["n_valid"], strict=True)}
    values = [lookup.get((str(m), str(f), str(g))) for m, f, g in
              zip(table[model], table["framing"], table[game], strict=True)]
    out = table.copy()
    out.insert(out.columns.get_loc(after) + 1, name, pd.array(values, dtype="Int64"))
    return out


def pair_counts(tests: Any, props: Any) -> Any:
    """A comparisons.model_tests table with n_a and n_b (the decisions behind estimate_a and estimate_b)."""
    out = cell_counts(tests, props, model="model_a", name="n_a", after="estimate_a")
    return cell_counts(out, props, model="model_b", name="n_b", after="estimate_b")


def equilibrium_tables(frame: Any) -> dict[str, Any]:
    """The report's stage-game tables of one-shot rows, each with the decisions behind every p(C): nash_distance,
    qre_models (one lambda per model; n_obs), qre_lambda (per cell) and doubled_tests (`<game>_doubled` minus `<game>`:
    n_a doubled, n_b original); {} when the frame has no one-shot 2x2 decisions."""
    one = propensity.propensity_table(repeated.one_shot_rows(frame))
    if one.empty:
        return {}
    doubled = comparisons.doubled_tests(one, assume_n=ASSUME_N)
    doubled = cell_counts(cell_counts(doubled, one, game="doubled", name="n_a", after="estimate_a"), one,
                          name="n_b", after="estimate_b")
    return {"nash_distance": cell_counts(equilibria.nash_table(one), one),
            "qre_models": equilibria.qre_model_table(one),
            "qre_lambda": cell_counts(equilibria.qre_table(one), one), "doubled_tests": doubled}


#: the caption of each equilibrium table, in the report and in `tomarena analyze equilibria`
EQUILIBRIUM_CAPTIONS = {"nash_distance": "Nash distance", "qre_models": "Logit QRE per model (joint fit)",
                        "qre_lambda": "Logit QRE per cell",
                        "doubled_tests": "Payoff scaling: p(C) doubled - original (z-test)"}


def _equilibrium_section(w: _Writer, frame: Any) -> list[Section]:
    """Stage-game tools (Nash distance, logit QRE) on one-shot rows only: repeated rounds are not a stage game."""
    tabs = {k: w.csv(k, v) for k, v in equilibrium_tables(frame).items()}
    if not tabs:
        return []
    text = ("One-shot decisions only; n = the decisions behind each p(C). Distance of p(C) to the nearest Nash "
            "equilibrium (any role), to the nearest symmetric one (Snowdrift: the mixed one) and to the payoff- and "
            "risk-dominant equilibria (Stag Hunt's selection). Logit QRE: one rationality lambda per model fitted "
            "jointly over its one-shot cells by "
            "maximum likelihood on the principal branch (counts where sampled, one weight per exactly scored cell), "
            "with a profile-likelihood 95% CI, beside the log-likelihoods of the uniform model (p = 0.5), of the best "
            "constant p and of the saturated model: a lambda that does not beat the constant explains nothing the "
            "level does not. Per cell, 'no λ ≥ 0' marks a p(C) no lambda can reach (e.g. P(C) > 0.5 in a "
            "Prisoner's Dilemma): never read as lambda 0; at_bound = the limit lambda -> infinity.")
    tables = [(EQUILIBRIUM_CAPTIONS[k], v) for k, v in tabs.items() if k != "doubled_tests" or len(v)]
    return [Section("Equilibria (one-shot)", text, tables, collapsed=True)]


def _repeated_section(w: _Writer, frame: Any, seed: int) -> list[Section]:
    """Repeated play judged as repeated play: cooperation by round, memory-one fingerprints and their distances
    with intervals over matches, and the subgame-perfect / folk-theorem benchmarks beside the observed cooperation."""
    if not len(frame) or not repeated._repeated_mask(frame).any():  # no copy of the repeated rows
        return []
    m1 = repeated.memory_one_rows(frame)  # built once for every table and the counts
    tables = repeated.repeated_tables(frame, n_boot=REPEATED_BOOT, seed=seed, m1=m1)
    tables["repeated_theory"] = theory_counts(tables["repeated_theory"], m1)
    del m1
    tabs = {k: w.csv(k, v) for k, v in tables.items()}
    fp, rounds = tabs["fingerprints"], tabs["cooperation_by_round"]
    states = fp[fp["state"] != "start"] if len(fp) else fp
    n_games = rounds["game"].nunique() if len(rounds) else 0
    lines = pooled_rounds(rounds) if n_games > MAX_GAME_PLOTS else rounds
    figs = ([w.png("fingerprints", plots.fingerprint_plot, states)] if len(states) else []) + \
        ([w.png("cooperation_by_round", plots.rounds_plot, lines)] if len(rounds) else [])
    pooled = (f" With {n_games} games the figure of cooperation over rounds pools them (one line per model, every "
              "decision weighted alike); the table keeps every game." if n_games > MAX_GAME_PLOTS else "")
    text = ("Rounds after the first of repeated matches. P(C) after each previous joint outcome (own action first; "
            "'start' = the first round) and p(C) by round, each with a 95% interval that resamples whole matches "
            "(decisions of one match are not independent). Fingerprint distance: the mean absolute difference of "
            "two policies' P(C | state) over the states both visited, with its match-bootstrap interval. Theory: "
            "with a known finite horizon backward induction gives the stage equilibrium every round (all-D in a "
            "Prisoner's Dilemma); under a continuation probability delta, grim trigger sustains (C,C) iff "
            "delta >= delta* = (T - R)/(T - v_N), v_N the deviator's stage-Nash payoff (5/7 in the study's PD). "
            "n = the decisions behind each p(C)." + pooled)
    tables = [("Theory beside observed cooperation", tabs["repeated_theory"]),
              ("Memory-one fingerprints", fp), ("Fingerprint distances", tabs["fingerprint_distances"]),
              ("Cooperation by round", rounds)]
    return [Section("Repeated play", text, tables, figs, collapsed=True)]


def theory_counts(theory: Any, m1: Any) -> Any:
    """A repeated.repeated_theory table with n (the valid decisions behind its p(C), per run x game, counted in the
    memory-one rows `m1`) after p_cooperate."""
    import pandas as pd

    counts = m1.groupby(["run", "game"], observed=True).size().to_dict() if len(m1) else {}
    out = theory.copy()
    values = [counts.get((str(r), str(g))) for r, g in zip(out["run"], out["game"], strict=True)]
    out.insert(out.columns.get_loc("p_cooperate") + 1, "n", pd.array(values, dtype="Int64"))
    return out


def pooled_rounds(rounds: Any) -> Any:
    """A cooperation-by-round table pooled over games: per model x round, p(C) weighted by each cell's n (so every
    decision counts alike), its n, and game = "all N games"; no intervals (the per-game table keeps them)."""
    import pandas as pd

    if rounds.empty:
        return rounds
    label = f"all {rounds['game'].nunique()} games"
    df = rounds.assign(k=rounds["p_cooperate"] * rounds["n"])
    g = df.groupby(["model", "round"], sort=True)[["k", "n"]].sum().reset_index()
    return pd.DataFrame({"model": g["model"], "game": label, "round": g["round"], "p_cooperate": g["k"] / g["n"],
                         "n": g["n"].astype(int)})


def _evolution(matrices: Mapping[str, Any]) -> tuple[dict[str, Any], Any, Any]:
    """Per game: its Moran table (when the matrix is complete), and long tables of every game's Moran fixation
    (game, mutant, resident, fixation) and replicator outcome (game, policy, share, or the reason there is none)."""
    import pandas as pd

    morans, fix, rep = {}, [], []
    for game, m in matrices.items():
        try:
            morans[game] = tournament.moran_table(m)
        except ConfigError as exc:  # an incomplete matrix: no Moran table, no replicator outcome
            rep.append({"game": game, "policy": "", "share": float("nan"), "note": str(exc)})
            continue
        fix += [{"game": game, "mutant": a, "resident": b, "fixation": v}
                for a, row in morans[game].iterrows() for b, v in row.items() if a != b]
    shares = evolution.replicator_many({g: matrices[g] for g in morans})
    rep += [{"game": g, "policy": k, "share": v, "note": ""} for g, sh in shares.items() for k, v in sh.items()]
    return (morans, pd.DataFrame(fix, columns=["game", "mutant", "resident", "fixation"]),
            pd.DataFrame(rep, columns=["game", "policy", "share", "note"]))


def _replicator_text(rep: Any, game: str) -> str:
    """One game's replicator outcome as a sentence (shares of at least 0.01, largest first), or why there is none."""
    g = rep[rep["game"] == game]
    if len(g) and g["note"].iloc[0]:
        return f"{game}: {g['note'].iloc[0]}"
    kept = sorted(((v, k) for k, v in zip(g["policy"], g["share"], strict=True) if v >= 0.01), reverse=True)
    return f"{game}: replicator dynamics from the uniform mix end at " + ", ".join(
        f"{k} {v:.3f}" for v, k in kept) + "."


def _replicator_summary(rep: Any, games: Sequence[str]) -> Any:
    """Per game (in the order given): the replicator outcome in one cell (shares of at least 0.01)."""
    import pandas as pd

    return pd.DataFrame({"game": list(games), "replicator_outcome": [
        _replicator_text(rep, g).split(": ", 1)[1].removeprefix("replicator dynamics from the uniform mix end at ")
        .rstrip(".") for g in games]})


def _tournament_section(w: _Writer, frame: Any, seed: int) -> list[Section]:
    """Standings and winners per game (and per run when there are several), the headline, where the decisions came
    from; then the cross-play section."""
    st = standings.standings_by_game(frame, seed=seed)
    if st.empty:
        return []
    several = st["run"].nunique() > 1
    w.csv("standings", st)
    win = w.csv("winners", standings.winners(st))
    counted = provenance.source_shares(frame, keep=(frame["kind"] == "tournament").to_numpy())
    shares = w.csv("decision_sources", counted)
    note = provenance.replay_note(frame, shares=counted).replace("\n", "; ")
    note = (f"Where the replayed decisions come from (source replay = recorded play, replay-model = a documented "
            f"model beyond the recordings): {note}." if note else "")
    shown = st if several else st.drop(columns=["run"])
    tables: list[tuple[Any, ...]] = [(f"Standings per game{' and run' if several else ''} (rank within the game; "
                                      "mean payoff per round with a 95% bootstrap CI over matches)", shown, note)]
    if len(win) > 1:
        tables.append(("Winner per game", win if several else win.drop(columns=["run"])))
    tables.append(("Decision sources: share of each policy's tournament decisions per trace source", shares))
    scope = ("Standings rank policies within one game of one run only: payoffs of different games (and runs) are "
             "on different scales and are never ranked together.")
    head = Section("Tournament", " ".join(x for x in (standings.headline(win), scope) if x), tables)
    return [head, *_crossplay_section(w, frame)]


def _crossplay_section(w: _Writer, frame: Any) -> list[Section]:
    """Cross-play figures, matrices and Moran tables of at most MAX_GAME_PLOTS games; every game's matrix, Moran
    fixation and replicator outcome as long CSVs (and the replicator outcomes as a table) when there are more."""
    import pandas as pd

    matrices = tournament.crossplay_matrices(frame)
    if not matrices:
        return []
    games = sorted(matrices, key=standings.natural_key)
    drawn = shown_games(games)
    morans, fixation, rep = _evolution(matrices)
    figs, tables = [], []
    for game in drawn:
        m = w.csv(f"crossplay_{_safe(game)}", matrices[game])
        tables.append((f"Cross-play: {game} (row's mean payoff per round vs column)", m))
        figs.append(w.png(f"crossplay_{_safe(game)}", plots.crossplay_plot, m, game))
        if game in morans:
            tables.append((f"Moran fixation (row invades column, N=10; neutral = 0.1): {game}",
                           w.csv(f"moran_{_safe(game)}", morans[game])))
    notes = [_replicator_text(rep, g) for g in drawn]
    if len(games) > MAX_GAME_PLOTS:
        long = [{"game": g, "policy": p, "opponent": o, "mean_payoff_per_round": v}
                for g in games for p, row in matrices[g].iterrows() for o, v in row.items() if pd.notna(v)]
        w.csv("crossplay_by_game", pd.DataFrame(long))
        w.csv("moran_by_game", fixation)
        w.csv("replicator_by_game", rep)
        tables.append(("Replicator dynamics from the uniform mix, every game", _replicator_summary(rep, games)))
        notes = [f"Cross-play matrices, figures and Moran tables are shown for the first {MAX_GAME_PLOTS} of the "
                 f"{len(games)} games (in name order); every game's matrix, Moran fixation and replicator outcome "
                 "are in crossplay_by_game.csv, moran_by_game.csv and replicator_by_game.csv; the last table here "
                 "gives every game's replicator outcome."]
    text = ("Two-player matches, framings pooled: the row policy's mean payoff per round against the column policy "
            "(runs pooled), the fixation probability of one row mutant among N-1 column residents (frequency-"
            "dependent Moran process) and where replicator dynamics from the uniform mix end. " + " ".join(notes))
    return [Section("Cross-play and evolutionary outcomes", text, tables, figs, collapsed=True)]


def _rg_section(w: _Writer, frame: Any) -> list[Section]:
    """Akata et al.'s headline findings recomputed on the run's play of the Robinson-Goforth games (rg144/<n>):
    score per family against the best achievable, forgiveness in the PD family, coordination in the BoS-like
    games."""
    rows = rg_findings.rg_rows(frame)
    if rows.empty:
        return []
    scores = w.csv("rg_family_scores", rg_findings.family_scores(rows))
    forgive = w.csv("rg_pd_forgiveness", rg_findings.pd_forgiveness(rows))
    bos = w.csv("rg_bos_coordination", rg_findings.bos_coordination(rows))
    pairs = w.csv("rg_bos_pairs", rg_findings.bos_coordination(rows, by_partner=True))
    order = [f for f in (*rg_findings.FAMILIES, rg_findings.ALL) if f in set(scores["family"])]
    grid = scores.pivot(index="policy", columns="family", values="score_vs_max")[order]
    decisions = scores.pivot(index="policy", columns="family", values="decisions")[order]
    grid.columns.name, decisions.columns.name = "family", "family"
    figs = [w.png("rg_family_scores", plots.family_score_plot, grid)]
    text = ("Akata et al. (Nature Human Behaviour, 2025) report that the models do well in games where valuing "
            "their own interest pays (the Prisoner's Dilemma family), less well where they must coordinate (Battle "
            "of the Sexes), and that GPT-4 kept defecting once its partner had defected once. Here the same "
            "questions are asked of this run's play of the 144 Robinson-Goforth games (the recorded models are the "
            "akata/* policies; their partners are each other, not the study's scripted opponents). Score: points / "
            "the seat's maximum payoff in the game's table (score_vs_max: the best achievable were the partner to "
            "play into the seat's best cell every round), and points / the payoff of the best reply to the "
            "partner's actual choice each round (score_vs_best_reply). Forgiveness: in PD-family matches, the rate "
            "of option 1 (cooperation: mutual option 1 pays both seats more than the equilibrium) in rounds up to "
            "the partner's first defection (chosen before seeing it) and after it; never_again = the share of "
            "matches with later rounds in which the policy never chose option 1 again. Coordination: in the "
            "Biased-family games with two pure equilibria that the seats rank oppositely "
            f"({len(rg_findings.bos_games())} of the 144: Battle, Asym/Skewed/Quasi Battle, Hero), the share of "
            "decisions whose round ended on "
            "either equilibrium, on the seat's own preferred one or on the partner's. "
            + rg_findings.findings_text(scores, forgive, bos))
    tables = [("Score relative to the seat's maximum, per family (score_vs_max)", grid),
              ("Decisions behind each score", decisions),
              ("Prisoner's Dilemma family: option 1 before and after the partner's first defection", forgive),
              ("Battle-of-the-Sexes-like games: rounds ending on a pure equilibrium", bos),
              ("Battle-of-the-Sexes-like games, per partner", pairs),
              ("Every score per family (rg_family_scores.csv)", scores)]
    return [Section("Robinson-Goforth games: the study's findings recomputed", text, tables, figs)]


def _overview(paths: Sequence[Any], frame: Any, roles: Mapping[str, str]) -> Section:
    import pandas as pd

    runs = [{"run": str(p), "run_id": read_manifest(p).get("run_id", ""), "kind": read_manifest(p).get("kind", ""),
             "rows": int((frame["run_dir"] == str(p)).sum())} for p in paths]
    role_text = ", ".join(f"{k}={v}" for k, v in roles.items()) or "none set"
    return Section("Runs", f"Roles: {role_text}.", [("Runs", pd.DataFrame(runs))])


def build_report(runs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], *,
                 roles: Mapping[str, str | None] | None = None, min_gap: float = alignment.MIN_GAP,
                 seed: int = 0, progress: bool | None = None, training: TrainingRecord | None = None) -> Report:
    """Analyse the runs and write DIR/report.html, DIR/report.md, the CSV tables and the PNG figures, after removing
    what a previous report wrote there. Explicit role labels must name policies of the runs (ConfigError otherwise).
    `progress`: a line per step on stderr (None: only for runs of PROGRESS_ROWS trace rows or more); `training`:
    what the student was trained on (analysis.training_fit.read_training), to name training fits and held-out sets."""
    paths = [str(p) for p in runs]
    say = _Progress(progress if progress is not None else _count_rows(paths) >= PROGRESS_ROWS)
    say(f"loading {len(paths)} run{'s' if len(paths) != 1 else ''}")
    frame = load_report_frame(paths, training)
    check_role_labels(roles or {}, frame["policy"].unique())
    used = roles_from_manifests(paths, **dict(roles or {}))
    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    clean_previous(outdir)
    w = _Writer(outdir)
    say(f"propensities ({len(frame):,} rows)")
    props = propensity.propensity_table(propensity.scenario_rows(frame))
    prop = _propensity_section(w, frame, props, used)
    say("alignment")
    head, align, heads = _alignment_section(w, frame, props, used, min_gap, seed, training)
    say("equilibria")
    equi = _equilibrium_section(w, frame)
    say("repeated play")
    rep_sections = _repeated_section(w, frame, seed)
    say("tournament")
    tour = _tournament_section(w, frame, seed)
    rg = _rg_section(w, frame)
    sections = [head, _overview(paths, frame, used), *align, *tour, *rg, *prop, *equi, *rep_sections]
    names = list(dict.fromkeys("/".join(Path(p).resolve().parts[-2:]) for p in paths))
    title = "tomarena report: " + (", ".join(names) if len(names) <= 4 else f"{len(names)} runs")
    say("writing report.md and report.html")
    md, page = outdir / "report.md", outdir / "report.html"
    md.write_text(to_markdown(title, sections), encoding="utf-8")
    page.write_text(to_html(title, sections), encoding="utf-8")
    say("done")
    return Report(outdir, page, md, w.files, dict(used), heads)


#: the trace columns the report reads (the others, chiefly the prompt and completion texts, are never loaded)
REPORT_COLUMNS = ("run_id", "kind", "episode_id", "game", "framing", "horizon", "round", "agent", "policy",
                  "opponents", "intended_action", "action", "action_label", "probs", "p_cooperate", "source",
                  "parse_status", "other_mass", "reward")


def report_columns(training: TrainingRecord | None = None) -> tuple[str, ...]:
    """REPORT_COLUMNS, plus the prompts when a training record is given (training fits compare them)."""
    return REPORT_COLUMNS + (("prompt",) if training is not None else ())


def load_report_frame(paths: Sequence[str], training: TrainingRecord | None = None) -> Any:
    """The runs' trace rows, report_columns(training) only; probs, the largest of them (12 M rows: 240 MB), is read
    only when the runs have donation decisions, the only rows that use it."""
    columns = report_columns(training)
    frame = load_runs(paths, columns=[c for c in columns if c != "probs"])
    if propensity.donation_mask(frame).any():
        frame.insert(columns.index("probs"), "probs", load_runs(paths, columns=["probs"])["probs"])
    return frame


class _Progress:
    """Prints "report: STEP (elapsed s)" lines on stderr when enabled."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.t0 = enabled, time.monotonic()

    def __call__(self, step: str) -> None:
        if self.enabled:
            print(f"report: {step} ({time.monotonic() - self.t0:.1f} s)", file=sys.stderr, flush=True)


def _count_rows(paths: Sequence[str]) -> int:
    """Trace rows of the runs from the Parquet footers (no data read); 0 where a shard cannot be read."""
    import pyarrow.parquet as pq

    total = 0
    for p in paths:
        for shard in shard_paths(p):
            try:
                total += pq.ParquetFile(shard).metadata.num_rows
            except Exception:  # a broken shard is load_runs' to report, with its own message
                return total
    return total


def check_role_labels(roles: Mapping[str, str | None], policies: Any) -> None:
    """Every given --teacher/--base/--student label names a policy of the runs; else one-line ConfigError listing
    the allowed labels (and the closest one)."""
    allowed = sorted(map(str, policies))
    bad = [(k, v) for k, v in roles.items() if k in ("teacher", "base", "student") and v and v not in allowed]
    if not bad:
        return
    hints = []
    for k, v in bad:
        close = difflib.get_close_matches(str(v), allowed, n=1)
        hints.append(f"--{k} {v!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    shown = ", ".join(allowed[:40]) + (f", ... ({len(allowed) - 40} more)" if len(allowed) > 40 else "")
    raise ConfigError(f"{'; '.join(hints)}: not a policy label in these runs; allowed labels: {shown}")


def clean_previous(outdir: Path) -> list[str]:
    """Remove the files a previous report wrote into `outdir` (as listed in FILES_LIST), nothing else; returns
    their names. A missing or unreadable list removes nothing."""
    listing = outdir / FILES_LIST
    try:
        names = json.loads(listing.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    removed = []
    for name in names if isinstance(names, list) else []:
        path = outdir / str(name)
        ours = Path(str(name)).name == name and path.suffix in (".csv", ".png", ".md", ".html")
        if ours and path.is_file() and not path.is_symlink():
            path.unlink()
            removed.append(str(name))
    listing.unlink(missing_ok=True)
    return removed

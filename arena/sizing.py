"""How big a run is before it starts: its matches, expected decisions, trace bytes on disk, memory and time, said in
one line (a second once the first shard has measured the real pace), and a one-line refusal of a run whose traces
cannot fit on the disk of its run directory. Nothing here plays a match: the numbers come from the run's plan
(arena.config.spec_families) and from rates measured on this project's engines."""

from __future__ import annotations

import math
import shutil
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tomarena.agents.base import Policy
from tomarena.arena.episode import MatchSpec
from tomarena.arena.fast import vectorisable
from tomarena.errors import ConfigError

#: a run expected to make at least this many decisions is sized before it starts (one with an LLM always is)
BIG_RUN = 1_000_000
#: compressed trace bytes per decision by engine, measured on this project's shards: the classic engines write 2 B
#: for short matches (round numbers and sums repeat, so the columns dictionary-encode) and about 10 B for long ones
#: (beyond LONG_MATCH decisions); LLM rows keep their prompts and answers
BYTES_PER_DECISION = {"short": 2.0, "long": 10.0, "llm": 100.0}
LONG_MATCH = 200
#: seconds per decision, and per match besides its decisions, by engine, end to end (play, shard, summary):
#: the vectorised engine measured at 1.5 us per decision plus 60 us per match (its seed and players' rng streams),
#: the episode loop at a few hundred microseconds per decision (strategist, Axelrod strategies); an LLM is timed live
SECONDS_PER_DECISION = {"vectorised": 1.5e-6, "rule": 3e-4}
SECONDS_PER_MATCH = {"vectorised": 6e-5, "rule": 0.0}
#: resident bytes per decision of the chunk in flight (its arrays, its Arrow table, the Parquet writer)
CHUNK_BYTES_PER_DECISION = 400
#: resident bytes of the process before the first chunk (interpreter, numpy, pyarrow, pandas, the registries)
BASE_BYTES = 250 * 2**20


def expected_rounds(spec: MatchSpec) -> float:
    """Rounds a match is expected to last: its fixed horizon, or E[min(geometric, max_rounds)] under continuation
    c, which is (1 - c^max_rounds) / (1 - c); a sweep's scenario is one decision."""
    if spec.kind == "sweep":
        return 1.0
    if spec.continuation is None:
        return float(spec.rounds or 1)
    c = spec.continuation
    return (1 - c ** spec.max_rounds) / (1 - c) if c > 0 else 1.0


@dataclass(frozen=True)
class Estimate:
    """A run's size before it starts; `seconds` is None when an LLM's pace is not known until it plays."""

    matches: int
    decisions: float
    engine: str  # "vectorised", "rule" or "llm"
    disk_bytes: float
    memory_bytes: float
    seconds: float | None

    @property
    def big(self) -> bool:
        """Whether the run is worth sizing aloud: many decisions, or an LLM (whose every decision costs)."""
        return self.decisions >= BIG_RUN or self.engine == "llm"


def estimate(families: Sequence[tuple[MatchSpec, int]], policies: Mapping[str, Policy], chunk_matches: int,
             matches: int | None = None) -> Estimate:
    """The size of playing `matches` (default: all) of the planned `families` in chunks of `chunk_matches`."""
    total = sum(n for _, n in families)
    matches = total if matches is None else matches
    share = matches / total if total else 0.0
    decisions = share * sum(n * expected_rounds(s) * (1 if s.kind == "sweep" else len(s.policies))
                            for s, n in families)
    if any(p.heavy for p in policies.values()):
        engine = "llm"
    elif families and all(vectorisable([s], policies) for s, _ in families):
        engine = "vectorised"
    else:
        engine = "rule"
    per_match = decisions / matches if matches else 0.0
    memory = BASE_BYTES + CHUNK_BYTES_PER_DECISION * per_match * min(chunk_matches, max(matches, 1))
    seconds = None if engine == "llm" else decisions * SECONDS_PER_DECISION[engine] + (
        matches * SECONDS_PER_MATCH[engine])
    rows = "llm" if engine == "llm" else "long" if per_match > LONG_MATCH else "short"
    return Estimate(matches, decisions, engine, decisions * BYTES_PER_DECISION[rows], memory, seconds)


def free_bytes(out: Path) -> int:
    """Free bytes on the disk holding `out` (or its nearest existing parent)."""
    here = Path(out).resolve()
    while not here.exists() and here != here.parent:
        here = here.parent
    return shutil.disk_usage(here).free


def check_disk(est: Estimate, out: Path, free: int) -> None:
    """A one-line ConfigError when the run's traces would outgrow the free space of their disk even at half the
    estimate (traces compress better or worse than measured): it would stop part way, hours in, so it is refused
    before it starts."""
    if est.disk_bytes / 2 > free:
        raise ConfigError(f"this run would write about {size(est.disk_bytes)} of traces ({count(est.decisions)} "
                          f"decisions in {count(est.matches)} matches), but the disk of {out} has {size(free)} free; "
                          "run fewer repetitions, rounds or policies, or choose an --out on a larger disk")


def describe(est: Estimate, free: int) -> str:
    """The line said before a big run: matches, decisions, disk (and what is free), memory and time."""
    when = "time unknown until the first shard (an LLM's pace)" if est.seconds is None else \
        f"about {duration(est.seconds)}"
    tight = ", it may not fit" if est.disk_bytes > free else ""
    return (f"run size: {count(est.matches)} matches, about {count(est.decisions)} decisions ({est.engine} engine); "
            f"about {size(est.disk_bytes)} of traces ({size(free)} free{tight}), memory about "
            f"{size(est.memory_bytes)} (one chunk at a time), {when}")


def describe_pace(decisions: int, seconds: float, disk_bytes: int, remaining: float, remaining_seconds: float) -> str:
    """The line said once the first slow shard is stored: the pace and trace bytes measured, and what the
    `remaining` decisions will take (`remaining_seconds`, scaled from the slow policies' decisions)."""
    rate = decisions / seconds if seconds > 0 else math.inf
    per = disk_bytes / decisions if decisions else 0.0
    return (f"measured: {count(rate)} decisions/s, {per:.0f} B per decision on disk; the remaining "
            f"{count(remaining)} decisions take about {duration(remaining_seconds)} and {size(per * remaining)}")


def work(spec: MatchSpec, heavy: Collection[str]) -> float:
    """What a match costs, for pacing: its expected decisions by `heavy` policies, or all of its expected decisions
    when the run has none (a sweep's scenario is one decision, by its one policy)."""
    seats = spec.policies[:1] if spec.kind == "sweep" else spec.policies
    return expected_rounds(spec) * sum(1 for p in seats if p in heavy or not heavy)


def describe_fixed(labels: Sequence[str], size: int, seconds: float, matches: int, save_every: float) -> str:
    """The line said when a shard took longer than `save_every` but chunks keep their size, because the labelled
    policies decide differently in another batch (so cutting chunks by time would make results depend on timing)."""
    fits = max(1, int(save_every * matches / seconds))
    return (f"{', '.join(labels)} decide differently in another batch, so chunks keep {size} matches (results never "
            f"depend on timing): a shard every {duration(seconds * size / max(matches, 1))} at this pace; "
            f"--chunk-size {fits} would save about every {duration(save_every)}")


def truncation_note(spec: MatchSpec) -> str | None:
    """A warning when max_rounds cuts more than 1% of a continuation run's matches short."""
    if spec.kind == "sweep" or spec.continuation is None:
        return None
    cut = spec.continuation ** spec.max_rounds
    if cut <= 0.01:
        return None
    return (f"continuation {spec.continuation:g} means {1 / (1 - spec.continuation):,.0f} rounds per match on "
            f"average, but max_rounds {spec.max_rounds} ends {cut:.0%} of matches there; raise --max-rounds to "
            f"let them run")


def count(x: float) -> str:
    """A count as people read it: 950, 12,000, 3.4 million, 6 billion."""
    for limit, word in ((1e12, "trillion"), (1e9, "billion"), (1e6, "million")):
        if x >= limit:
            return f"{x / limit:.3g} {word}"
    return f"{x:,.0f}"


def size(n: float) -> str:
    """Bytes as kB, MB, GB, TB or PB (powers of 1000, as disks are sold)."""
    for limit, unit in ((1e15, "PB"), (1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if n >= limit:
            return f"{n / limit:.3g} {unit}"
    return f"{n:.0f} B"


def duration(seconds: float) -> str:
    """Seconds as s, min, h or days."""
    if not math.isfinite(seconds):
        return "forever"
    for limit, unit in ((86_400, "days"), (3600, "h"), (60, "min")):
        if seconds >= limit:
            return f"{seconds / limit:.3g} {unit}"
    return f"{seconds:.2g} s"

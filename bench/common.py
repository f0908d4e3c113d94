"""Shared helpers of the benchmarks: machine info, timing, tables, guards, the RATIO line and JSON results."""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).parent / "results"


class GuardFailed(AssertionError):
    """The fast and the baseline path disagree: the benchmark's numbers mean nothing."""


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the common `--quick` flag (a ~20 s version of the benchmark)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="a short version (~20 s) with smaller workloads")
    return p


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or the platform's processor string)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    """CPU count, CPU model, load average (other work on the machine skews timings), torch threads and versions."""
    info: dict[str, Any] = {"cpu_count": os.cpu_count(), "cpu_model": cpu_model(), "python": platform.python_version(),
                            "platform": platform.platform()}
    try:
        info["cpus_usable"] = len(os.sched_getaffinity(0))
        info["load_average_1_5_15"] = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        pass
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["torch"] = torch.__version__
    except ImportError:
        info["torch_threads"] = None
    return info


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """(result, wall seconds) of one call."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def guard(ok: bool, message: str) -> None:
    """Fail loudly when a correctness guard does not hold."""
    if not ok:
        raise GuardFailed(f"GUARD FAILED: {message}")
    print(f"guard ok: {message}")


def print_table(rows: Sequence[dict[str, Any]], title: str = "") -> None:
    """A plain fixed-width table of dict rows (same keys in every row)."""
    if not rows:
        return
    cols = list(rows[0])
    cells = [[_fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    if title:
        print(f"\n== {title} ==")
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"
    return "" if v is None else str(v)


def ratio_line(name: str, ratio: float, target: float, lower_is_better: bool = False) -> str:
    """The final `RATIO <name>: <x>x (target <t>x)` line of a benchmark (printed and returned)."""
    sign = "<=" if lower_is_better else ">="
    line = f"RATIO {name}: {ratio:.2f}x (target {sign}{target:g}x)"
    print(line, flush=True)
    return line


def write_result(name: str, data: dict[str, Any]) -> Path:
    """Write bench/results/<name>.json with the machine info added; returns its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {"benchmark": name, "when_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "machine": machine_info(), **data}
    path.write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
    print(f"results written to {path}")
    return path

"""Run every benchmark, each in its own Python process, keep going past failures, and summarise the RATIO lines.

`python -m bench.run_all [--quick] [--only a,b]`: each benchmark's output is streamed as it runs; the summary at
the end lists every benchmark's RATIO line (or why it has none), its exit status and its wall time. The exit
status is 1 when any benchmark failed (a guard, an error, or no RATIO line), else 0.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import machine_info, print_table

BENCHMARKS = ("classic_cli_vs_axelrod", "axelrod_library_vs_classic", "continuation_vs_fixed",
              "propensity_exact_vs_sampled", "llm_play_batched_vs_naive", "hf_one_per_forward_vs_padded",
              "executors", "ray_scaling", "finetune_vs_trl",
              "distill_step_prefix_bf16", "distill_step_trunk_cache", "demo_stage_times", "report_memory")
ROOT = Path(__file__).resolve().parent.parent


def run_one(name: str, quick: bool) -> dict[str, Any]:
    """Run `python -m bench.<name>` (streaming its output); returns its status, RATIO line and seconds."""
    cmd = [sys.executable, "-m", f"bench.{name}", *(["--quick"] if quick else [])]
    print(f"\n######## {' '.join(cmd[1:])}", flush=True)
    t0 = time.perf_counter()
    ratio, guard_failed, last = None, False, ""
    with subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            text = line.strip()
            if text.startswith("RATIO "):
                ratio = text
            guard_failed |= "GUARD FAILED" in text
            last = text or last
    rc = proc.returncode
    status = "ok" if rc == 0 and ratio else "guard failed" if guard_failed else f"failed (exit {rc})"
    return {"benchmark": name, "status": status, "seconds": round(time.perf_counter() - t0, 1),
            "ratio_line": ratio or f"(no RATIO line; last output: {last[:100]})"}


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks and print the summary table; returns the exit status."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="pass --quick to every benchmark (short versions)")
    p.add_argument("--only", help=f"comma list of benchmarks to run (default all: {', '.join(BENCHMARKS)})")
    args = p.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        p.error(f"unknown benchmark {unknown[0]!r}; allowed: {', '.join(BENCHMARKS)}")
    rows = [run_one(n, args.quick) for n in names]
    info = machine_info()
    print_table(rows, f"summary{' (--quick)' if args.quick else ''}: {info['cpu_count']} cores, {info['cpu_model']}, "
                      f"load average {info.get('load_average_1_5_15')}")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Peak memory of `tomarena report` over a 12-million-decision run vs loading that run's rows alone.

The run: three classic strategies (tit-for-tat, always-defect, win-stay-lose-shift), every pair with self-play, 200
rounds x 5,000 repetitions of the prisoner's dilemma (12 M decisions; 1.2 M with --quick), played once into a
temporary directory. Each side runs as a fresh `python` process and its peak resident set size is read from the
operating system (`os.wait4`: that process's own rusage): the baseline loads the rows and columns the report
reads (`analysis.report.load_report_frame`) and exits; the report is `tomarena report RUN --out DIR` end to end
(every table, figure, report.md and report.html).
Guard: the report wrote report.md and standings.csv.
RATIO = report peak / load-only peak (target <= 2: the report holds about one more copy of the rows at most);
the issue's absolute target is a 2 GB peak, printed beside it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import guard, parser, print_table, ratio_line, timed, write_result

NAME = "report_memory"
TARGET = 2.0
LIMIT_GB = 2.0
POLICIES = "classic/tit_for_tat,classic/always_defect,classic/win_stay_lose_shift"
LOAD_ONLY = "import sys; from tomarena.analysis.report import load_report_frame; load_report_frame([sys.argv[1]])"


def peak_of(cmd: list[str]) -> tuple[float, float]:
    """(peak resident GB, seconds) of one child process (its own rusage, from wait4); it must exit with status 0."""
    def wait() -> tuple[int, Any]:
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode:
                err.seek(0)
                raise RuntimeError(f"{' '.join(cmd[:3])} failed: {err.read().decode()[-400:]}")
        return proc.returncode, usage

    (_, usage), secs = timed(wait)
    return usage.ru_maxrss / 1e6, secs  # kB on Linux


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and write bench/results/report_memory.json."""
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    reps = 500 if args.quick else 5000
    exe = Path(sys.executable).with_name("tomarena")
    with tempfile.TemporaryDirectory() as tmp:
        run, out = Path(tmp) / "run", Path(tmp) / "report"
        subprocess.run([str(exe), "tournament", "--policies", POLICIES, "--rounds", "200", "--repetitions", str(reps),
                        "--out", str(run), "--no-progress"], check=True, capture_output=True)
        load_gb, load_s = peak_of([sys.executable, "-c", LOAD_ONLY, str(run)])
        report_gb, report_s = peak_of([str(exe), "report", str(run), "--out", str(out)])
        guard(all((out / f).is_file() for f in ("report.md", "standings.csv")),
              "the report wrote report.md and standings.csv")
    decisions = 6 * 2 * 200 * reps  # 6 pairings (with self-play) x 2 seats x 200 rounds x reps
    table = [{"side": "load the rows only", "peak_GB": round(load_gb, 2), "seconds": round(load_s, 1)},
             {"side": "tomarena report (end to end)", "peak_GB": round(report_gb, 2), "seconds": round(report_s, 1)}]
    print_table(table, f"{decisions:,} decisions (peak resident set size of each process)")
    print(f"absolute: report peak {report_gb:.2f} GB against the {LIMIT_GB:g} GB target")
    ratio = report_gb / load_gb
    result = {"quick": args.quick, "decisions": decisions, "table": table, "report_peak_gb": report_gb,
              "limit_gb": LIMIT_GB, "ratio": ratio, "target": TARGET}
    write_result(NAME, result)
    result["ratio_line"] = ratio_line(NAME, ratio, TARGET, lower_is_better=True)
    return result


if __name__ == "__main__":
    main()

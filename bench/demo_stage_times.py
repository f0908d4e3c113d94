"""Demo pipeline: wall time by stage of `tomarena pipeline --config configs/demo.yaml` against its 600 s budget.

Runs the CLI in a subprocess into a fresh temporary run directory (`--out`), so no stage is skipped, times the
whole command (interpreter start and imports included) and reads the per-stage times from its pipeline.json
(`timings_s`). --quick runs configs/smoke.yaml instead, with the tiny random model built by
`python -m tests.tiny_model <dir>` as the student (a temporary copy of the YAML points `student` at it).
Guard: every stage ran (none skipped), the report exists, and the stage times add up to the pipeline's own total.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import guard, parser, print_table, ratio_line, write_result

NAME = "demo_stage_times"
BUDGET_S = 600.0
TARGET = 1.0
ROOT = Path(__file__).resolve().parent.parent
STAGES = ("teacher", "measure_base", "measure_teacher", "finetune", "measure_student", "tournament", "report")


def quick_config(tmp: Path) -> Path:
    """configs/smoke.yaml with `student` pointing at a freshly built tiny model."""
    import yaml

    model = tmp / "tiny-model"
    subprocess.run([sys.executable, "-m", "tests.tiny_model", str(model)], cwd=ROOT, check=True, capture_output=True)
    data = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    data["student"] = f"hf:{model}"
    path = tmp / "smoke.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run_cli(config: Path, out: Path) -> tuple[float, str]:
    """`tomarena pipeline --config CONFIG --out OUT` as a subprocess: (wall seconds, its output)."""
    cmd = [sys.executable, "-m", "tomarena.app.cli", "pipeline", "--config", str(config), "--out", str(out)]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        print(res.stdout[-3000:], res.stderr[-3000:], sep="\n")
        raise RuntimeError(f"the pipeline exited with status {res.returncode}")
    return wall, res.stdout


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and write bench/results/pipeline.json."""
    import json

    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        config = quick_config(tmp) if args.quick else ROOT / "configs" / "demo.yaml"
        wall, stdout = run_cli(config, tmp / "run")
        summary = json.loads((tmp / "run" / "pipeline.json").read_text())
        report_ok = Path(summary["report"]).is_file()
    timings, log = summary["timings_s"], summary["log"]
    total = timings["total_this_session"]
    staged = sum(timings.get(s, 0.0) for s in STAGES)
    guard(all(s in timings for s in STAGES) and not [x for x in log if "skipped" in x] and report_ok,
          f"all {len(STAGES)} stages ran in a fresh run directory and wrote the report")
    guard(0.9 * total <= staged <= total + 0.5, f"stage times add up to the pipeline's total ({staged:.1f} of "
                                                f"{total:.1f} s)")
    rows = [{"stage": s, "seconds": timings[s], "share_of_wall": timings[s] / wall} for s in STAGES]
    rows += [{"stage": "untimed inside the pipeline", "seconds": total - staged,
              "share_of_wall": (total - staged) / wall},
             {"stage": "interpreter start, imports, config checks", "seconds": wall - total,
              "share_of_wall": (wall - total) / wall},
             {"stage": "total (wall of the command)", "seconds": wall, "share_of_wall": 1.0}]
    print_table(rows, f"tomarena pipeline --config {config.name} (budget {BUDGET_S:.0f} s)")
    print("arena runs: " + "; ".join(log))
    ratio = wall / BUDGET_S
    result = {"quick": args.quick, "config": config.name, "wall_s": wall, "timings_s": timings, "log": log,
              "table": rows, "budget_s": BUDGET_S, "ratio": ratio, "target": TARGET, "lower_is_better": True}
    write_result(NAME, result)
    result["ratio_line"] = ratio_line(NAME, ratio, TARGET, lower_is_better=True)
    return result


if __name__ == "__main__":
    main()

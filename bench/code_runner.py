"""The code runner's cost per program: wall time of `run_python` and its overhead over the program's own run, and
programs per second, on this machine's cores.

    python bench/code_runner.py [--n 60] [--throughput 300] [--label box] [--tree .] [--out bench/results/code_runner.json]

Three programs: `print(6*7)`, a SymPy solve, and a failing one (`1/0`). Each is run `--n` times back to back from
one caller after one warm-up run; overhead = wall time − the same program's time run in this process (SymPy already
imported). Throughput: `--throughput` trivial programs from two caller threads at once. `--tree` names the checkout
whose `verifier_pool` is measured, so a commit before the box (`git archive <commit> | tar -x -C DIR`) is measured by
the same script; each label's figures are merged into `--out`.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pathlib
import platform
import statistics
import sys
import threading
import time

PROGRAMS = {
    "print": "print(6*7)",
    "sympy_solve": "import sympy\nx = sympy.Symbol('x')\nprint(sympy.solve(x**2 - 5*x + 6, x))",
    "failing": "print(1/0)",
}


def in_process_seconds(program: str, repeats: int = 20) -> float:
    """The program's own run time, here (imports already done), median of `repeats`."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(Exception):
            exec(compile(program, "program.py", "exec"), {"__name__": "__main__"})  # noqa: S102 - our own programs
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sequential(run_python, program: str, n: int) -> dict:
    run_python(program, timeout=30)
    walls, statuses = [], {}
    for _ in range(n):
        start = time.perf_counter()
        result = run_python(program, timeout=30)
        walls.append(time.perf_counter() - start)
        statuses[result.status] = statuses.get(result.status, 0) + 1
    own = in_process_seconds(program)
    walls.sort()
    return {"n": n, "statuses": statuses, "wall_p50_ms": 1e3 * walls[n // 2], "wall_p90_ms": 1e3 * walls[int(n * 0.9)],
            "own_ms": 1e3 * own, "overhead_p50_ms": 1e3 * (walls[n // 2] - own),
            "overhead_p90_ms": 1e3 * (walls[int(n * 0.9)] - own)}


def throughput(run_python, total: int, callers: int = 2) -> dict:
    run_python(PROGRAMS["print"], timeout=30)
    done, failures = [0], [0]
    lock = threading.Lock()

    def caller(count: int) -> None:
        for _ in range(count):
            ok = run_python(PROGRAMS["print"], timeout=30).stdout == "42\n"
            with lock:
                done[0] += 1
                failures[0] += not ok

    threads = [threading.Thread(target=caller, args=(total // callers,)) for _ in range(callers)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    return {"programs": done[0], "callers": callers, "seconds": seconds, "programs_per_s": done[0] / seconds,
            "failures": failures[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--throughput", type=int, default=300)
    parser.add_argument("--label", default="box")
    parser.add_argument("--tree", default=str(pathlib.Path(__file__).resolve().parents[1]))
    parser.add_argument("--out", default="bench/results/code_runner.json")
    args = parser.parse_args()
    sys.path[:] = [p for p in sys.path if pathlib.Path(p or ".").resolve() != pathlib.Path(__file__).resolve().parent]
    sys.path.insert(0, str(pathlib.Path(args.tree).resolve()))
    import sympy  # noqa: F401 - the in-process reference runs with SymPy loaded
    from verifier_pool.code_runner import run_python

    figures = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d"),
               "tree": args.tree, "programs": {name: sequential(run_python, program, args.n)
                                               for name, program in PROGRAMS.items()},
               "throughput": throughput(run_python, args.throughput)}
    out = pathlib.Path(args.out)
    merged = json.loads(out.read_text()) if out.exists() else {}
    merged[args.label] = figures
    out.write_text(json.dumps(merged, indent=2) + "\n")
    for name, row in figures["programs"].items():
        print(f"{args.label:>8} {name:12} wall p50 {row['wall_p50_ms']:7.1f} ms  overhead p50 {row['overhead_p50_ms']:7.1f} ms"
              f"  p90 {row['overhead_p90_ms']:7.1f} ms  {row['statuses']}")
    t = figures["throughput"]
    print(f"{args.label:>8} throughput {t['programs_per_s']:.1f} programs/s ({t['programs']} from {t['callers']} callers,"
          f" {t['failures']} failed)")


if __name__ == "__main__":
    main()

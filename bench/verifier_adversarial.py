"""Worst-case time of the verifier's entry points on long hostile text, against its deadline.

    python bench/verifier_adversarial.py [--sizes 9500 19500 100000] [--case-cap 30]
        [--out bench/results/verifier_adversarial.json] [--md bench/results/verifier_adversarial.md]
        [--before OLD.json]

Each family is one crafted input, grown to each size, aimed at one regex or scan of the verifier on model text:
long digit runs before a degree mark, runs of separators between two `\\boxed{}`, unclosed tags and braces,
`=` chains, whitespace runs inside an answer statement, and so on (the `targets` column names the code). A family
of kind `answer` is the predicted answer itself (`compare`) and the content of a `<final_answer>` (`score`, TRL); a
family of kind `completion` is the whole completion, and the predicted answer too. Each (family, size) is timed,
wall clock, once per entry point:

- `compare(pred, "1", timeout=2.0, policy="strict")` and `policy="lenient"`;
- `score(completion, "What is 1?", "1", timeout=2.0)` (the 8-signal reward, strict);
- `trl_reward("lenient")(completions=[completion], prompts=[...], answer=["1"])` (the TRL reward function).

The target is a worst time at most the deadline + 0.5 s for every entry point: a regex that is super-linear on
model text running outside the deadline-bound sandbox breaks it. Cases run one at a time in a worker process that
is killed when one case passes `--case-cap` seconds (recorded as `>cap`, and the worker is replaced); the sandbox
is pinged between cases, untimed, so a case that ends in a timeout does not charge the next one for the sandbox's
restart. The same worker then times the labelled corpus (bench/data/verifier_pairs.jsonl and
verifier_completions.jsonl, judged as bench/verifier_vs_math_verify.py judges them) for the p50 of each entry point
and a digest of every verdict, so a change can show that the normal corpus is judged the same and as fast.
`--before` reads an earlier run's JSON and puts its figures beside this run's in the markdown table, which is written
between the `generated` markers of the `--md` file (the reading around them is kept).
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import pathlib
import platform
import select
import subprocess
import sys
import time

sys.path[:] = [p for p in sys.path if pathlib.Path(p or ".").resolve() != pathlib.Path(__file__).resolve().parent]
ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEADLINE = 2.0
ENTRIES = ("compare_strict", "compare_lenient", "score", "trl")
GOLD, PROBLEM = "1", "What is 1?"


def fill(prefix: str, unit: str, suffix: str, n: int) -> str:
    """`prefix + unit·k + suffix`, about n characters long."""
    return prefix + unit * max(1, (n - len(prefix) - len(suffix)) // len(unit)) + suffix


def nest(opener: str, core: str, closer: str, n: int) -> str:
    k = max(1, n // (len(opener) + len(closer)))
    return opener * k + core + closer * k


# (name, kind, targets, builder): kind `answer` is the predicted answer, `completion` the whole completion.
FAMILIES = [
    ("digits before a degree mark", "answer", "normalize._ANGLE", lambda n: fill("", "1", "x^\\circ", n)),
    ("digits in a trig argument", "answer", "normalize._ANGLE, degrees_in_trig",
     lambda n: fill("\\sin(", "1", "x^\\circ)", n)),
    ("spaces after sin", "answer", "normalize._TRIG_NAME", lambda n: fill("\\sin", " ", "30^\\circ", n)),
    ("many sin(30°)", "answer", "normalize._TRIG_NAME, matching_brackets",
     lambda n: fill("", "\\sin(30^\\circ)+", "1", n)),
    ("backslash run", "answer", "normalize trailing backslashes", lambda n: fill("", "\\", "x", n)),
    ("trailing backslashes", "answer", "normalize trailing backslashes", lambda n: fill("1", "\\", "", n)),
    ("unclosed \\text{", "answer", "normalize._TEXT_CMD, _TRAILING_TEXT", lambda n: fill("1\\text{", "a", "", n)),
    ("many \\text{", "answer", "normalize._TEXT_CMD", lambda n: fill("", "\\text{", "", n)),
    ("many \\text{ apples}", "answer", "normalize._TEXT_CMD, strip_units",
     lambda n: fill("1", "\\text{ apples}", "", n)),
    ("$ run", "answer", "normalize, extract._MATH_DELIMITER", lambda n: fill("", "$", "1", n)),
    ("{ run", "answer", "matching_brackets, _balanced, _top_level_matches", lambda n: fill("", "{", "1", n)),
    ("} run", "answer", "_balanced, _top_level_matches", lambda n: fill("1", "}", "", n)),
    ("deep parentheses", "answer", "parse (depth), _balanced", lambda n: nest("(", "1", ")", n)),
    ("deep exponent braces", "answer", "equivalence._exponents, guard_latex", lambda n: nest("2^{", "1", "}", n)),
    ("^ run", "answer", "equivalence._exponents", lambda n: fill("2", "^", "2", n)),
    ("! run", "answer", "guard_latex factorials, parse", lambda n: fill("3", "!", "", n)),
    ("digits before x!", "answer", "guard_latex factorials", lambda n: fill("", "1", "x!", n)),
    ("digit run", "answer", "parse.NUMBER, plain_number", lambda n: "1" * n),
    ("digits then a dot", "answer", "parse.NUMBER, normalize", lambda n: fill("", "1", ".", n)),
    ("thousands groups", "answer", "normalize._GROUPED_NUMBER", lambda n: fill("1", ",000", "", n)),
    ("LaTeX thousands {,}", "answer", "normalize._LATEX_THOUSANDS", lambda n: fill("1", "{,}000", "", n)),
    ("LaTeX thousands \\,", "answer", "normalize._LATEX_THOUSANDS", lambda n: fill("1", "\\,000", "", n)),
    ("digits then a decimal comma", "answer", "normalize._DECIMAL_COMMA", lambda n: fill("", "1", ",5", n)),
    ("mixed number groups", "answer", "normalize._PLAIN_MIXED", lambda n: fill("1 ", "000 ", "1/2", n)),
    ("short \\frac12 run", "answer", "normalize._SHORT_FRAC", lambda n: fill("", "\\frac12", "", n)),
    ("unclosed \\frac{", "answer", "normalize._SHORT_FRAC_DEN", lambda n: fill("", "\\frac{", "1", n)),
    ("\\sqrt digits", "answer", "normalize._SHORT_SQRT", lambda n: fill("\\sqrt", "1", "x", n)),
    ("space run", "answer", "normalize whitespace", lambda n: fill("1", " ", "2", n)),
    ("unit words", "answer", "normalize.strip_units", lambda n: fill("5", " cm", "", n)),
    ("= chain", "answer", "equivalence._RELATION, _relation_structure", lambda n: fill("x", " = 1", "", n)),
    ("\\le chain", "answer", "normalize._RELATIONS, _relation_parts", lambda n: fill("1", " \\le 2", "", n)),
    ("or list", "answer", "equivalence._LIST_WORDS, _assignment_list", lambda n: fill("", "x = 1 or ", "x = 1", n)),
    ("assignment list", "answer", "equivalence._assignment_list, _TARGET", lambda n: fill("", "x_1 = 1, ", "y = 2", n)),
    ("comma list", "answer", "equivalence._split_top_level", lambda n: fill("", "1, ", "1", n)),
    ("semicolon list", "answer", "equivalence._LIST_SEPARATOR", lambda n: fill("", "1; ", "1", n)),
    ("cases rows", "answer", "equivalence._CASES", lambda n: fill("\\begin{cases}", "x = 1 \\\\ ", "\\end{cases}", n)),
    ("unclosed matrices", "answer", "equivalence._MATRIX", lambda n: fill("", "\\begin{pmatrix}", "1", n)),
    ("matrix rows", "answer", "equivalence._MATRIX",
     lambda n: fill("\\begin{pmatrix}", "1 & 2 \\\\ ", "\\end{pmatrix}", n)),
    ("\\cup inside brackets", "answer", "equivalence.structure (unions)", lambda n: fill("(", "1 \\cup 2, ", ")", n)),
    ("many \\cup", "answer", "equivalence.structure (unions)", lambda n: fill("", "\\{1\\} \\cup ", "\\{2\\}", n)),
    ("underscore run", "answer", "equivalence.structure (names)", lambda n: fill("a", "_", "!", n)),
    ("letter run", "answer", "structure (text), parse names", lambda n: "a" * n),
    ("letters then a digit", "answer", "structure (text)", lambda n: fill("", "a", "1", n)),
    ("\\pm run", "answer", "equivalence._expand_pm", lambda n: fill("", "\\pm 1", "", n)),
    ("digits before \\times 10^", "answer", "equivalence._SCI_LATEX", lambda n: fill("", "1", "\\times 10^{5}x", n)),
    ("digits in an exponent", "answer", "parse.NUMBER exponent", lambda n: fill("1e", "1", "x", n)),
    ("1. run", "answer", "parse.NUMBER", lambda n: fill("", "1.", "", n)),
    ("choice run", "answer", "normalize._CHOICE", lambda n: fill("", "(A)", "", n)),
    ("\\left( run", "answer", "normalize LaTeX noise", lambda n: fill("", "\\left(", "1", n)),
    ("boxes joined by spaces", "completion", "extract._BOX_JOINER, last_boxed",
     lambda n: fill("\\boxed{1}", " ", "x\\boxed{2}", n)),
    ("boxes joined by $", "completion", "extract._BOX_JOINER", lambda n: fill("\\boxed{1}", "$", "x\\boxed{2}", n)),
    ("boxes joined by \\(", "completion", "extract._BOX_JOINER", lambda n: fill("\\boxed{1}", "\\(", "x\\boxed{2}", n)),
    ("boxes joined by , and ,", "completion", "extract._BOX_JOINER",
     lambda n: "\\boxed{1}" + ", " * (n // 4) + "and" + " ," * (n // 4) + "x\\boxed{2}"),
    ("many joined boxes", "completion", "extract.last_boxed", lambda n: fill("", "\\boxed{1}, ", "", n)),
    ("unclosed boxes", "completion", "extract.boxed_spans", lambda n: fill("", "\\boxed{", "1", n)),
    ("nested boxes", "completion", "extract.boxed_spans", lambda n: nest("\\boxed{", "1", "}", n)),
    ("unclosed <final_answer>", "completion", "extract._FINAL_ANSWER", lambda n: fill("", "<final_answer>", "1", n)),
    ("unclosed <reasoning><response>", "completion", "reward tags",
     lambda n: fill("", "<reasoning><response>", "\\boxed{1}", n)),
    ("trailing dots in <final_answer>", "completion", "extract._strip_sentence_end",
     lambda n: fill("<final_answer>1", ".", "</final_answer>", n)),
    ("answer statement, spaces, no end", "completion", "extract._ANSWER_IS",
     lambda n: fill("The answer is", " ", "x" * 400, n)),
    ("answer statement, spaces and a colon", "completion", "extract._ANSWER_IS",
     lambda n: "Final answer:" + " \t" * (n // 4) + ":" + " " * (n // 2) + "x" * 400),
    ("answer statement, \\r run", "completion", "extract._ANSWER_IS (I hope)",
     lambda n: fill("answer: 5", "\r", "x", n)),
    ("many answer statements", "completion", "extract._ANSWER_IS", lambda n: fill("", "answer:", "", n)),
    ("answer statements, 301 letters", "completion", "extract._ANSWER_IS",
     lambda n: fill("", "answer: " + "x" * 301, "", n)),
    ("# run", "completion", "extract._GSM8K", lambda n: "#" * n),
    ("#### then spaces", "completion", "extract._GSM8K", lambda n: fill("####", " ", "1", n)),
    ("$ then \\( run", "completion", "extract.math_spans", lambda n: fill("$", "\\(", "", n)),
    ("$…$ pairs", "completion", "extract.math_spans, _mask_math", lambda n: fill("", "$1$ ", "", n)),
    ("unclosed \\[", "completion", "extract.math_spans", lambda n: fill("", "\\[", "1", n)),
    ("digit run in prose", "completion", "extract._LAST_NUMBER, parse.NUMBER_IN_TEXT",
     lambda n: fill("x ", "1", "a", n)),
    ("1, run", "completion", "extract._LAST_NUMBER, NUMBER_IN_TEXT", lambda n: fill("", "1,", "", n)),
    ("-1 run", "completion", "extract._LAST_NUMBER, NUMBER_IN_TEXT", lambda n: fill("", "-1", "", n)),
    ("1e run", "completion", "extract._LAST_NUMBER, NUMBER_IN_TEXT", lambda n: fill("", "1e", "", n)),
    ("1/ run", "completion", "extract._LAST_NUMBER", lambda n: fill("", "1/", "", n)),
    ("= then spaces then =", "completion", "reward._EQUALS_RESULT", lambda n: fill("= ", " ", "=", n)),
    ("= then spaces, no end", "completion", "reward._EQUALS_RESULT", lambda n: fill("= 1", " ", "=1", n)),
    ("x = chain", "completion", "reward._EQUALS_RESULT", lambda n: fill("", "x = ", "", n)),
    ("= 1, spaces, 1", "completion", "reward consistency (last result)", lambda n: fill("= 1", " ", "1", n)),
    ("= 1, spaces, letters", "completion", "reward consistency (last result)",
     lambda n: "= 1" + " " * (n // 2) + "a" * (n // 2) + "1"),
    ("repeated words", "completion", "reward repetition, length", lambda n: fill("", "the cat sat ", "1", n)),
    ("statement with is", "completion", "extract._statement_answer, _IS",
     lambda n: fill("The answer is ", "x is ", "1.", n)),
]


# ---------------------------------------------------------------- the worker: times one case per request


def run_entry(entry: str, text: str, kind: str):
    """Run one entry point on a family's text; returns (seconds, verdict or reward)."""
    from verifier_pool.equivalence import compare
    from verifier_pool.reward import score
    from verifier_pool.trl_reward import trl_reward

    completion = f"<final_answer>{text}</final_answer>" if kind == "answer" else text
    start = time.perf_counter()
    if entry.startswith("compare_"):
        out = compare(text, GOLD, timeout=DEADLINE, policy=entry.split("_")[1]).verdict.value
    elif entry == "score":
        out = score(completion, PROBLEM, GOLD, timeout=DEADLINE).verdict.value
    else:
        out = trl_reward("lenient", timeout=DEADLINE)(completions=[completion], prompts=[PROBLEM], answer=[GOLD])[0]
    return time.perf_counter() - start, out


def warm_sandbox() -> None:
    """An idle, started sandbox for the next case (untimed)."""
    from verifier_pool import sandbox

    sandbox.run("ping", (), timeout=120.0)


def corpus_rows() -> list[dict]:
    def load(name: str) -> list[dict]:
        return [json.loads(line) for line in (ROOT / "bench/data" / name).read_text().splitlines() if line.strip()]

    return load("verifier_pairs.jsonl") + load("verifier_completions.jsonl")


def corpus_timings() -> dict:
    """p50 per entry point over the labelled corpus, and a digest of every verdict and reward."""
    from verifier_pool import extract_answer
    from verifier_pool.equivalence import compare
    from verifier_pool.reward import score
    from verifier_pool.trl_reward import trl_reward

    reward = trl_reward("lenient", timeout=DEADLINE)
    times: dict[str, list[float]] = {entry: [] for entry in ENTRIES}
    seen = []
    for row in corpus_rows():
        pred = row["pred"] if "pred" in row else extract_answer(row["completion"])
        gold = (extract_answer(row["gold"]) if row.get("gold_is_text") else row["gold"]) or ""
        completion = row["completion"] if "completion" in row else f"<final_answer>{row['pred']}</final_answer>"
        calls = {
            "compare_strict": lambda: compare(pred, gold, timeout=DEADLINE, policy="strict").verdict.value,
            "compare_lenient": lambda: compare(pred, gold, timeout=DEADLINE, policy="lenient").verdict.value,
            "score": lambda: round(score(completion, PROBLEM, gold, timeout=DEADLINE).total, 9),
            "trl": lambda: reward(completions=[completion], prompts=[PROBLEM], answer=[gold])[0],
        }
        for entry, call in calls.items():
            start = time.perf_counter()
            seen.append(call())
            times[entry].append(time.perf_counter() - start)
    digest = hashlib.sha256(json.dumps(seen).encode()).hexdigest()[:16]
    return {"n": len(times["score"]), "verdicts_sha256": digest,
            "p50_ms": {entry: round(1000 * sorted(t)[len(t) // 2], 3) for entry, t in times.items()}}


def worker() -> None:
    """Answer one JSON case per stdin line with one JSON result line; `corpus` asks for the corpus timings."""
    from verifier_pool.equivalence import compare

    compare("\\sqrt{2}", "\\frac{2}{\\sqrt{2}}", timeout=60.0)  # starts the sandbox
    print(json.dumps({"ready": True}), flush=True)
    families = {name: (kind, build) for name, kind, _, build in FAMILIES}
    for line in sys.stdin:
        case = json.loads(line)
        if case.get("corpus"):
            print(json.dumps(corpus_timings()), flush=True)
            continue
        kind, build = families[case["family"]]
        seconds, out = run_entry(case["entry"], build(case["size"]), kind)
        warm_sandbox()
        print(json.dumps({"seconds": seconds, "out": out}), flush=True)


# ---------------------------------------------------------------- the parent: one worker, replaced when it overruns


class Worker:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1, start_new_session=True)
        self.ask_line(None, 300.0)

    def ask_line(self, request: dict | None, cap: float) -> dict | None:
        """Send a request (None: only read) and wait up to `cap` seconds for its reply; None when it overran."""
        if request is not None:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], cap)
        line = self.proc.stdout.readline() if ready else ""
        return json.loads(line) if line else None

    def kill(self) -> None:
        os.killpg(self.proc.pid, 9)
        self.proc.wait()


def run_cases(sizes: list[int], cap: float) -> dict:
    """{family: {entry: {size: seconds or None (over the cap), "out": {size: verdict}}}}."""
    results: dict = {}
    worker_ = Worker()
    for name, kind, targets, _ in FAMILIES:
        row = results.setdefault(name, {"kind": kind, "targets": targets})
        for entry in ENTRIES:
            cell = row.setdefault(entry, {"seconds": {}, "out": {}})
            for size in sizes:
                reply = worker_.ask_line({"family": name, "entry": entry, "size": size}, cap)
                if reply is None:
                    worker_.kill()
                    worker_ = Worker()
                cell["seconds"][str(size)] = None if reply is None else round(reply["seconds"], 4)
                cell["out"][str(size)] = None if reply is None else reply["out"]
            worst = worst_of(cell)
            print(f"{name[:34]:34s} {entry:15s} worst {fmt(worst, cap)} {cell['out']}", flush=True)
    corpus = worker_.ask_line({"corpus": True}, 600.0)
    worker_.kill()
    return {"families": results, "corpus": corpus}


def worst_of(cell: dict) -> float | None:
    """The cell's worst time; None when some size ran over the cap."""
    values = list(cell["seconds"].values())
    return None if None in values else max(values)


def fmt(seconds: float | None, cap: float) -> str:
    return f">{cap:g} s" if seconds is None else f"{seconds:.3f} s"


def markdown(result: dict, before: dict | None) -> str:
    """The generated block of the results file: the worst time per family and entry point, then the corpus p50s."""
    cap, limit = result["case_cap_s"], DEADLINE + 0.5
    lines = [f"`python bench/verifier_adversarial.py` at sizes {result['sizes']} characters; {result['machine']}, "
             f"{result['date']}. Wall seconds, worst over the sizes" + (", before → after." if before else "."), "",
             "| family | targets | " + " | ".join(ENTRIES) + " |", "|---|---|" + "---|" * len(ENTRIES)]
    over = 0
    for name, row in result["families"].items():
        cells = []
        for entry in ENTRIES:
            worst = worst_of(row[entry])
            over += worst is None or worst > limit
            text = fmt(worst, cap).removesuffix(" s")
            if before and name in before["families"]:
                earlier = worst_of(before["families"][name][entry])
                text = f"{fmt(earlier, before['case_cap_s']).removesuffix(' s')} → {text}"
            cells.append(text)
        lines.append(f"| {name} | {row['targets']} | " + " | ".join(cells) + " |")
    lines += ["", f"Cells over the target: {over}.", "",
              "Normal corpus (labelled pairs and completions), p50 ms per call:", "",
              "| run | n | " + " | ".join(ENTRIES) + " | verdicts sha256 |", "|---|---|" + "---|" * (len(ENTRIES) + 1)]
    for label, res in (("before", before), ("this run", result)):
        if res and res.get("corpus"):
            c = res["corpus"]
            lines.append(f"| {label} | {c['n']} | " + " | ".join(str(c["p50_ms"][e]) for e in ENTRIES)
                         + f" | {c['verdicts_sha256']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[9_500, 19_500, 100_000])
    parser.add_argument("--case-cap", type=float, default=30.0, help="seconds before a case's worker is killed")
    parser.add_argument("--families", nargs="*", help="only the families whose name contains one of these")
    parser.add_argument("--out", default=str(ROOT / "bench/results/verifier_adversarial.json"))
    parser.add_argument("--md", default=str(ROOT / "bench/results/verifier_adversarial.md"))
    parser.add_argument("--before", help="an earlier run's JSON, shown beside this run in the markdown")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker()
    if args.families:
        FAMILIES[:] = [f for f in FAMILIES if any(part in f[0] for part in args.families)]
    start = time.perf_counter()
    result = {"machine": f"{platform.machine()} ({os.cpu_count()} cores), Python {platform.python_version()}",
              "date": time.strftime("%Y-%m-%d"), "sizes": args.sizes, "case_cap_s": args.case_cap,
              "deadline_s": DEADLINE, **run_cases(args.sizes, args.case_cap)}
    result["seconds"] = round(time.perf_counter() - start, 1)
    before = json.loads(pathlib.Path(args.before).read_text()) if args.before else None
    table = markdown(result, before)
    pathlib.Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    spec = importlib.util.spec_from_file_location("tiny_default", ROOT / "bench" / "tiny_default.py")
    writer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(writer)
    title = f"Verifier on long hostile text: worst time per family (deadline {DEADLINE:g} s)"
    writer.write_results_md(pathlib.Path(args.md), table, title)
    print(table)
    print(f"wrote {args.out} and {args.md} in {result['seconds']} s")


if __name__ == "__main__":
    main()

"""The `rlvr` command line: `verify` (score answers offline) and `train` (the training job)."""
from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from verifier_pool import compare, extract_answer


def verify_line(line: str, timeout: float) -> dict:
    """One JSONL record with `gold` and `pred` or `completion`, returned with equal/verdict/extracted/seconds
    (or an `error` field for a malformed record)."""
    try:
        record = json.loads(line)
        if not isinstance(record, dict) or "gold" not in record:
            raise ValueError("expected an object with a 'gold' field")
        if "pred" in record:
            extracted = None if record["pred"] is None else str(record["pred"])
        elif "completion" in record:
            extracted = extract_answer(str(record["completion"]))
        else:
            raise ValueError("expected a 'pred' or a 'completion' field")
    except (ValueError, TypeError) as exc:
        return {"line": line.rstrip("\n")[:200], "error": str(exc)}
    verdict = compare(extracted, str(record["gold"]), timeout=timeout)
    return {**record, "equal": verdict.equal, "verdict": verdict.verdict, "extracted": extracted,
            "seconds": round(verdict.seconds, 6)}


def verify_file(src: TextIO, dst: TextIO, timeout: float) -> tuple[int, int]:
    """Verify every non-blank line of `src` into `dst`; returns (lines, equal)."""
    lines = equal = 0
    for line in src:
        if not line.strip():
            continue
        out = verify_line(line, timeout)
        dst.write(json.dumps(out, ensure_ascii=False) + "\n")
        lines += 1
        equal += bool(out.get("equal"))
    return lines, equal


def _cmd_verify(args: argparse.Namespace) -> int:
    with open(args.file, encoding="utf-8") as src:
        dst = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout
        try:
            lines, equal = verify_file(src, dst, args.timeout)
        finally:
            if dst is not sys.stdout:
                dst.close()
    print(f"{equal}/{lines} equal", file=sys.stderr)
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from synthesis.generators import generate_problems

    topics = None
    if args.topics:
        topics = {}
        for item in args.topics.split(","):
            name, _, weight = item.partition(":")
            topics[name.strip()] = float(weight or 1.0)
    try:
        problems = generate_problems(args.n, args.difficulty, topics=topics, seed=args.seed, progress=True)
    except ValueError as exc:
        print(f"rlvr synth: {exc}", file=sys.stderr)
        return 2
    with open(args.out, "w", encoding="utf-8") as dst:
        for problem in problems:
            dst.write(json.dumps(problem.to_dict(), ensure_ascii=False) + "\n")
    print(f"wrote {len(problems)} problems to {args.out}", file=sys.stderr)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    print("rlvr train: not yet — the driver lands with issue 7 (see README).", file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlvr", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser("verify", help="judge {gold, pred|completion} JSONL lines with the SymPy verifier")
    verify.add_argument("file")
    verify.add_argument("--out", help="write results here instead of stdout")
    verify.add_argument("--timeout", type=float, default=2.0, help="seconds per comparison")
    verify.set_defaults(func=_cmd_verify)
    synth = sub.add_parser("synth", help="generate SymPy-checked problems with worked solutions as JSONL")
    synth.add_argument("--difficulty", type=int, choices=(1, 2, 3), default=1)
    synth.add_argument("--n", type=int, default=100)
    synth.add_argument("--out", required=True)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--topics", help="comma-separated topic[:weight] list (default: every topic equally)")
    synth.set_defaults(func=_cmd_synth)
    train = sub.add_parser("train", help="run the training job")
    train.set_defaults(func=_cmd_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

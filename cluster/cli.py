"""The `rlvr` command line: `train`, `sft`, `eval`, `benchmark`, `datasets`, `synth`, `verify`, `audit-split` and `rescore`."""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
from typing import TextIO

from verifier_pool import VERIFIER_VERSION, compare
from verifier_pool.extract import extract_final


def verify_line(line: str, timeout: float, policy: str = "lenient") -> dict:
    """One JSONL record with `gold` and `pred` or `completion` (optionally `question` and `form` for the strict
    policy), returned with equal/verdict/extracted/seconds/verifier_version, or an `error` field for a
    malformed record. Never raises: a line the verifier cannot judge gets verdict `error`."""
    try:
        record = json.loads(line)
        if not isinstance(record, dict) or "gold" not in record:
            raise ValueError("expected an object with a 'gold' field")
        statement = None
        if "pred" in record:
            extracted = None if record["pred"] is None else str(record["pred"])
        elif "completion" in record:
            final = extract_final(str(record["completion"]))
            extracted, statement = final.answer, final.statement
        else:
            raise ValueError("expected a 'pred' or a 'completion' field")
    except (ValueError, TypeError, RecursionError) as exc:
        return {"line": line.rstrip("\n")[:200], "error": str(exc)[:200]}
    verdict = compare(extracted, str(record["gold"]), timeout=timeout, policy=policy,
                      question=str(record.get("question", "")), form=str(record.get("form", "")), statement=statement)
    return {**record, "equal": verdict.equal, "verdict": verdict.verdict, "extracted": extracted,
            "seconds": round(verdict.seconds, 6), "reason": verdict.reason, "verifier_version": VERIFIER_VERSION}


def verify_file(src: TextIO, dst: TextIO, timeout: float, policy: str = "lenient") -> tuple[int, int]:
    """Verify every non-blank line of `src` into `dst`; returns (lines, equal)."""
    lines = equal = 0
    for line in src:
        if not line.strip():
            continue
        out = verify_line(line, timeout, policy)
        dst.write(json.dumps(out, ensure_ascii=False) + "\n")
        lines += 1
        equal += bool(out.get("equal"))
    return lines, equal


def _cmd_verify(args: argparse.Namespace) -> int:
    with open(args.file, encoding="utf-8") as src:
        dst = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout
        try:
            lines, equal = verify_file(src, dst, args.timeout, args.policy)
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
    if args.source == "grok":
        problems = _grok_problems(args, topics)
        if problems is None:
            return 2
    elif args.data:
        from synthesis.datasets import DatasetUnavailable, resolve_problems

        try:
            problems = resolve_problems(args.data, limit=args.n)
        except (DatasetUnavailable, FileNotFoundError, ValueError) as exc:
            print(f"rlvr synth: {exc}", file=sys.stderr)
            return 2
    else:
        try:
            problems = generate_problems(args.n, args.difficulty, topics=topics, seed=args.seed, progress=True)
        except ValueError as exc:
            print(f"rlvr synth: {exc}", file=sys.stderr)
            return 2
    rows = [p.to_dict() for p in problems]
    if args.cot == "grok":
        rows = _grok_cot_rows(args, problems)
        if rows is None:
            return 2
    with open(args.out, "w", encoding="utf-8") as dst:
        for row in rows:
            dst.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} {'chain-of-thought rows' if args.cot else 'problems'} to {args.out}", file=sys.stderr)
    return 0


def topic_counts(topics: dict[str, float], n: int) -> list[str]:
    """`n` topic names in proportion to their weights (largest remainders; no draw), in the order given."""
    total = sum(topics.values())
    exact = {t: n * w / total for t, w in topics.items()}
    counts = {t: int(v) for t, v in exact.items()}
    for t in sorted(exact, key=lambda t: counts[t] - exact[t])[: n - sum(counts.values())]:
        counts[t] += 1
    return [t for t in topics for _ in range(counts[t])]


def _grok_client(cls, args: argparse.Namespace, flag: str, **extra):
    """A Grok client of `cls` from the command line's settings, or None after saying why it cannot start."""
    from synthesis.grok import ResolverConfig

    try:
        return cls(ResolverConfig(model=args.grok_model, api_host=args.api_host, insecure=args.insecure,
                                  concurrency=args.concurrency), **extra)
    except (ImportError, RuntimeError) as exc:
        print(f"rlvr synth {flag}: {exc}", file=sys.stderr)
        return None


def _grok_problems(args: argparse.Namespace, topics: dict | None) -> list | None:
    """`--n` problems Grok proposes and SymPy answers through its tool calls (`synthesis.grok.GrokResolver`: bounded
    concurrency, backoff on rate limits, hard problems solved twice); every outcome counted by reason. None (after
    a message) when the resolver cannot start."""
    import asyncio
    from collections import Counter

    from synthesis.grok import GrokResolver

    if args.cot:
        print("rlvr synth: --cot writes worked solutions of generated problems; use it without --source grok",
              file=sys.stderr)
        return None
    resolver = _grok_client(GrokResolver, args, "--source grok")
    if resolver is None:
        return None
    requests = [(t, args.difficulty) for t in topic_counts(topics or {"arithmetic": 1, "algebra": 1,
                                                                       "word problems": 1}, args.n)]
    outcomes = asyncio.run(resolver.resolve_many(requests))
    kept = [o.problem for o in outcomes if o.problem is not None]
    reasons = Counter(o.reason for o in outcomes if o.problem is None)
    forms = Counter(o.symbolic or "none given" for o in outcomes if o.problem is not None)
    print(f"kept {len(kept)}/{len(outcomes)} problems answered by SymPy"
          + "".join(f"; {n} {reason}" for reason, n in reasons.most_common())
          + "\nsymbolic forms: " + ", ".join(f"{n} {what}" for what, n in forms.most_common()), file=sys.stderr)
    return kept


def _grok_cot_rows(args: argparse.Namespace, problems: list) -> list[dict] | None:
    """Grok's worked solutions of `problems`, kept only where its final answer equals SymPy's; the reasons for
    the rest are printed. None (after a message) when the resolver cannot start."""
    import asyncio
    from collections import Counter

    from synthesis.grok import BackupEndpoint, GrokCotWriter

    backup = BackupEndpoint(args.backup_url, args.backup_model or args.grok_model, args.backup_key_env) \
        if args.backup_url else None
    writer = _grok_client(GrokCotWriter, args, "--cot grok", attempts=args.attempts, backup=backup)
    if writer is None:
        return None
    outcomes = asyncio.run(writer.write_many(problems))
    rows = [o.row for o in outcomes if o.row is not None]
    backups = sum(r["source"] == "backup-cot" for r in rows)
    reasons = Counter(o.reason for o in outcomes if o.row is None)
    print(f"kept {len(rows)}/{len(outcomes)} solutions whose final answer matches SymPy's"
          + (f" ({backups} from the backup endpoint)" if backup else "")
          + f" in {sum(o.attempts for o in outcomes)} calls"
          + "".join(f"; {n} {reason}" for reason, n in reasons.most_common()), file=sys.stderr)
    return rows


def _cmd_audit_split(args: argparse.Namespace) -> int:
    from cluster.config import ConfigError, load_config
    from cluster.data import split_audit

    try:
        cfg = load_config(args.preset, args.config, list(args.set or []))
    except ConfigError as exc:
        print(f"rlvr audit-split: config error: {exc}", file=sys.stderr)
        return 2
    report = split_audit(cfg)
    print(f"held-out facts: {report['heldout_facts']}")
    for name, count in report["facts"].items():
        print(f"{name:<12} {count:>6} facts, {report['overlap_with_heldout'][name]} shared with held-out")
    leaked = sum(report["overlap_with_heldout"].values())
    print("no overlap" if not leaked else f"OVERLAP: {leaked} held-out facts are also training facts")
    return 1 if leaked else 0


def _cmd_datasets(args: argparse.Namespace) -> int:
    from synthesis.datasets import KNOWN_DATASETS

    print(f"{'name':<9} {'hub id':<36} {'split':<8} {'size':>7}  local sample")
    for d in KNOWN_DATASETS.values():
        sample = d.sample_path() if d.sample else "generated here (held-out side)"
        rows = f" ({sum(1 for _ in open(d.sample_path()))} rows)" if d.sample else ""
        print(f"{d.name:<9} {d.hub_id or '-':<36} {d.split:<8} {d.size or '-':>7}  {sample}{rows}")
    return 0


def dataset_file(name_or_file: str, limit: int | None = None) -> str:
    """A local file of problems for `--dataset`: the file itself, or a known dataset's rows written once under the
    cache; DatasetUnavailable when neither can be had."""
    from synthesis.datasets import KNOWN_DATASETS, resolve_problems

    if name_or_file not in KNOWN_DATASETS:
        return name_or_file
    from cluster.modelzoo import CACHE

    path = CACHE / "datasets" / f"{name_or_file}{'-' + str(limit) if limit else ''}.jsonl"
    if not path.exists():
        problems = resolve_problems(name_or_file, limit)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(p.to_dict()) + "\n" for p in problems))
    return str(path)


def sft_data_file(name_or_file: str, limit: int | None = None) -> str:
    """A local file of SFT rows for `rlvr sft --dataset`: the file itself, or a known dataset's rows (MetaMathQA,
    GSM8K, … in their own format, which `sft.data` reads) written once under the cache."""
    from synthesis.datasets import KNOWN_DATASETS, dataset_rows

    if name_or_file not in KNOWN_DATASETS:
        return name_or_file
    from cluster.modelzoo import CACHE

    path = CACHE / "datasets" / f"{name_or_file}-rows{'-' + str(limit) if limit else ''}.jsonl"
    if not path.exists():
        rows, _ = dataset_rows(name_or_file, limit)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r, default=str) + "\n" for r in rows))
    return str(path)


def _cmd_sft(args: argparse.Namespace) -> int:
    """`rlvr sft --dataset NAME|FILE --max-samples N --output DIR [--mode full]`: the SFT warm start on its own (a
    run that stops after it), its adapter written to DIR for `rlvr train --init-adapter DIR` and `rlvr eval
    --adapter DIR`; with `--mode full` the fine-tuned model itself, for `--set model.name=DIR` and `--model DIR`."""
    import shutil

    from cluster.checkpoint import SFT_MODEL
    from cluster.config import ConfigError, load_config
    from cluster.loop import train
    from cluster.services import JobFailed
    from synthesis.datasets import DatasetUnavailable

    output = pathlib.Path(args.output)
    try:
        data = sft_data_file(args.dataset, args.max_samples)
        cfg = load_config(args.preset, args.config, [f"sft.data={data}", "sft.enabled=true", "max_steps=0",
                                                     f"sft.max_samples={args.max_samples or 0}", f"sft.mode={args.mode}",
                                                     f"run_dir={output / 'run'}", *(args.set or [])])
        train(cfg)
    except (DatasetUnavailable, FileNotFoundError, FileExistsError, ValueError, ConfigError, JobFailed) as exc:
        print(f"rlvr sft: {exc}", file=sys.stderr)
        return 2 if not isinstance(exc, JobFailed) else 1
    checkpoint = output / "run" / "checkpoint"
    if cfg.sft.mode == "full":
        shutil.copytree(output / "run" / SFT_MODEL, output, dirs_exist_ok=True)
        print(f"rlvr sft: model written to {output} (rlvr train --set model.name={output}; rlvr eval --model {output})",
              file=sys.stderr)
        return 0
    shutil.copytree(checkpoint / "merged" / "0", output, dirs_exist_ok=True)
    shutil.copy(checkpoint / "rlvr_eval.json", output / "rlvr_eval.json")
    print(f"rlvr sft: adapter written to {output} (rlvr train --init-adapter {output}; rlvr eval --adapter {output})",
          file=sys.stderr)
    return 0


def _cmd_benchmark(args: argparse.Namespace) -> int:
    """`rlvr benchmark --dataset NAME|FILE --limit N`: `rlvr eval` on a dataset by name."""
    from synthesis.datasets import DatasetUnavailable

    try:
        args.data = dataset_file(args.dataset, args.limit)
    except (DatasetUnavailable, FileNotFoundError, ValueError) as exc:
        print(f"rlvr benchmark: {exc}", file=sys.stderr)
        return 2
    return _cmd_eval(args)


def _cmd_train(args: argparse.Namespace) -> int:
    from cluster.config import ConfigError, load_config
    from synthesis.datasets import DatasetUnavailable

    overrides = list(args.set or [])
    try:
        overrides = train_short_forms(args) + overrides
    except (DatasetUnavailable, FileNotFoundError, ValueError) as exc:
        print(f"rlvr train: {exc}", file=sys.stderr)
        return 2
    if args.env:
        overrides = [f"rollout.env={args.env}"] + (["rollout.max_turns=2"] if args.env == "code-feedback" else []) + overrides
    config_path = args.config
    if args.resume:
        saved = pathlib.Path(args.resume) / "config.yaml"
        if not saved.exists():
            print(f"rlvr train: --resume {args.resume}: no config.yaml there (not a run directory)", file=sys.stderr)
            return 2
        config_path = config_path or str(saved)
    try:
        cfg = load_config(args.preset, config_path, overrides)
    except ConfigError as exc:
        print(f"rlvr train: config error: {exc}", file=sys.stderr)
        return 2
    from cluster.loop import train
    from cluster.services import JobFailed

    try:
        train(cfg, resume=args.resume, force=args.force)
    except JobFailed as exc:
        print(f"rlvr train: {exc}", file=sys.stderr)
        return 1
    except FileExistsError as exc:
        print(f"rlvr train: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"rlvr train: config error: {exc}", file=sys.stderr)
        return 2
    return 0


def train_short_forms(args: argparse.Namespace) -> list[str]:
    """`--dataset`, `--algo` and `--cycles` as the `--set` overrides they stand for (halo-forge's spelling)."""
    out = []
    if args.dataset:
        name = pathlib.Path(args.dataset).stem if pathlib.Path(args.dataset).exists() else args.dataset
        out += ["curriculum.mode=fixed", "curriculum.resample_budget=0",
                f"stages=[{{name: {json.dumps(name)}, difficulty: 2, data: {json.dumps(dataset_file(args.dataset))}, "
                f"epochs: 1}}]"]
    if args.algo:
        out.append(f"algo={args.algo}")
    if args.cycles:
        out.append(f"raft.cycles={args.cycles}")
    if args.init_adapter:
        out += [f"init_adapter={args.init_adapter}", "sft.enabled=false"]
    return out


def adapter_eval_settings(adapter: str | None) -> dict:
    """The prompt template and answer policy saved beside an adapter or checkpoint (`rlvr_eval.json`)."""
    if not adapter:
        return {}
    path = pathlib.Path(adapter)
    for candidate in (path / "rlvr_eval.json", path.parent / "rlvr_eval.json"):
        if candidate.exists():
            return json.loads(candidate.read_text())
    return {}


def eval_system_prompt(args: argparse.Namespace) -> str:
    """`--system`, else the system turn the adapter was trained with, else none."""
    if args.system is not None:
        return args.system
    return adapter_eval_settings(getattr(args, "adapter", None)).get("system_prompt", "")


def merged_adapters(adapter: str) -> list:
    """Adapters a checkpoint's base weights had folded in (the SFT warm start), in order."""
    from learner.adapter import AdapterWeights

    path = pathlib.Path(adapter)
    folder = path / "merged" if (path / "merged").is_dir() else path.parent / "merged"
    if not folder.is_dir():
        return []
    return [AdapterWeights.load(p, version=500 + i) for i, p in enumerate(sorted(folder.iterdir(), key=lambda p: int(p.name)))]


def _eval_fleet(args: argparse.Namespace, model: str, adapter: str | None, prefix: str):
    """Rollout workers serving `model` with `adapter` (and the adapters its checkpoint had merged) applied."""
    from actors.fleet import RolloutFleet
    from actors.worker import create_rollout_workers
    from cluster.services import resolve_model
    from learner.adapter import AdapterWeights

    def spawn(first: int, count: int) -> list:
        return create_rollout_workers(count, engine=args.engine, num_gpus=args.gpus_per_worker,
                                      model=resolve_model(model), name_prefix=prefix, first_index=first,
                                      system_prompt=eval_system_prompt(args),
                                      **({"sync": "merged"} if args.engine == "hf" else {}))

    fleet = RolloutFleet(args.workers, spawn)
    if adapter:
        for merged in merged_adapters(adapter):
            fleet.merge(merged)
        fleet.push(AdapterWeights.load(adapter, version=1000))
    return fleet


def _cmd_eval(args: argparse.Namespace) -> int:
    import ray

    from actors.records import EnvSpec
    from cluster.config import PROMPT
    from cluster.evaluate import evaluate
    from synthesis.datasets import load_problems
    from verifier_pool.pool import VerifierPool

    problems = load_problems(args.data, limit=args.limit)
    settings = adapter_eval_settings(args.adapter)
    prompt = args.prompt or settings.get("prompt") or PROMPT
    policy = args.policy or settings.get("answer_policy") or "lenient"
    if not ray.is_initialized():
        ray.init(address=args.address or os.environ.get("RAY_ADDRESS") or "local", include_dashboard=False)
    started: list = []
    pool = None
    try:
        started.append(fleet := _eval_fleet(args, args.model, args.adapter, "eval-rollout"))
        pool = VerifierPool("auto", name_prefix="eval-verifier")
        if args.agent == "majority":
            result = majority_report(evaluate(fleet, pool, problems, EnvSpec("answer", template=prompt), k=args.k,
                                              temperature=args.temperature, max_tokens=args.max_tokens, policy=policy))
        elif args.agent:
            checkers = fleet
            if args.verifier_model or args.verifier_adapter:
                started.append(checkers := _eval_fleet(args, args.verifier_model or args.model, args.verifier_adapter,
                                                       "eval-checker"))
            result = run_agent(args, problems, fleet.workers, checkers.workers, pool, prompt, policy)
        else:
            result = evaluate(fleet, pool, problems, EnvSpec("answer", template=prompt), k=args.k,
                              temperature=args.temperature, max_tokens=args.max_tokens, policy=policy)
    finally:
        if pool is not None:
            pool.shutdown()
        for each in started:
            each.release()
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({k: v for k, v in result.items() if k != "per_problem"}, indent=1))
    if args.agent:
        print_agent_report(result)
        return 0
    shown = {"accuracy": result["accuracy"], "accuracy_ci95": "[{:.4f},{:.4f}]".format(*result["ci"]),
             f"pass@{result['k']}": result["pass@k"], f"maj@{result['k']}": result["maj@k"],
             "problems": result["problems"], "policy": policy}
    width = max(len(k) for k in shown)
    print(f"{'metric':<{width}}  value\n{'-' * (width + 8)}")
    for key, value in shown.items():
        print(f"{key:<{width}}  {value:.4f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    return 0


def run_agent(args: argparse.Namespace, problems: list, workers: list, checkers: list, pool, prompt: str,
              policy: str) -> dict:
    """`--agent`: the loop of `cluster.agents` over the rollout workers, the verifier pool and the code runner."""
    from actors.records import SamplingConfig
    from actors.worker import generate_across
    from cluster.agents import code_feedback, solver_verifier
    from verifier_pool.code_runner import run_python
    from verifier_pool.pool import ScoreRequest
    from verifier_pool.reward import Verdict

    sampling = SamplingConfig(temperature=args.temperature, max_tokens=args.max_tokens, logprobs=False, seed=0)

    def generate_on(targets: list):
        def generate(prompts: list[str]) -> list[str]:
            return [row[0].text for row in generate_across(targets, prompts, 1, sampling)] if prompts else []
        return generate

    def score(batch, texts: list[str]) -> list[bool]:
        requests = [ScoreRequest(f"{p.id}/agent", text, p.question, p.answer, {}, policy, p.form)
                    for p, text in zip(batch, texts)]
        return [b.verdict == Verdict.CORRECT for b in pool.score(requests)] if requests else []

    if args.agent == "solver-verifier":
        return solver_verifier(problems, [prompt.format(question=p.question) for p in problems], generate_on(workers),
                               generate_on(checkers), score, args.max_iterations or 5)
    return code_feedback(problems, generate_on(workers), lambda program: run_python(program, timeout=args.code_timeout),
                         score, args.max_iterations or 3)


def majority_report(result: dict) -> dict:
    """`--agent majority`: k samples per problem vote with SymPy-equivalence classes; one sample's accuracy and the
    majority answer's, each with its interval, in the agents' report shape."""
    return {"agent": f"majority of {result['k']}", "problems": result["problems"],
            "iterations": [{"iteration": "1 sample", "accuracy": result["accuracy"], "ci": result["ci"]},
                           {"iteration": f"maj@{result['k']}", "accuracy": result["maj@k"], "ci": result["maj_ci"]}],
            "pass@k": result["pass@k"]}


def print_agent_report(result: dict) -> None:
    print(f"{result['agent']} on {result['problems']} problems")
    print(f"{'iteration':<10} {'accuracy':>9}  95% CI")
    for row in result["iterations"]:
        print(f"{row['iteration']:<10} {row['accuracy']:>9.4f}  [{row['ci'][0]:.4f},{row['ci'][1]:.4f}]")
    if "verifier" in result or "programs" in result:
        counts = result.get("verifier") or result.get("programs") or {}
        print(("verifier turns: " if "verifier" in result else "programs: ")
              + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if "verdicts" in result:
        print("verdicts: " + ", ".join(f"{k} {v}" for k, v in result["verdicts"].items() if v))


def _cmd_rescore(args: argparse.Namespace) -> int:
    from cluster.rollout_log import rescore
    from verifier_pool.reward import RewardWeights

    overrides = {}
    for item in (args.weights or "").split(","):
        if item.strip():
            key, _, value = item.partition("=")
            overrides[key.strip()] = float(value)
    try:
        weights = RewardWeights.from_dict({**overrides, "preset": args.preset})
    except (TypeError, ValueError) as exc:
        print(f"rlvr rescore: --weights/--preset: {exc}", file=sys.stderr)
        return 2
    pairs = rescore(args.log, weights, timeout=args.timeout)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as dst:
            for old, new in pairs:
                dst.write(json.dumps({"logged": old, "rescored": new}) + "\n")
    n = max(len(pairs), 1)
    print(f"{len(pairs)} records: mean logged reward {sum(o for o, _ in pairs) / n:.4f}, "
          f"mean rescored {sum(r for _, r in pairs) / n:.4f}")
    return 0


def _add_eval_parser(sub, name: str = "eval") -> None:
    if name == "eval":
        ev = sub.add_parser("eval", help="accuracy, pass@k and maj@k of a model (+ adapter) on a dataset")
        ev.add_argument("--data", required=True, help="gsm8k / math / math500 / our problems, JSONL or parquet")
    else:
        ev = sub.add_parser("benchmark", help="rlvr eval on a dataset by name (rlvr datasets) or file")
        ev.add_argument("--dataset", required=True, help="a name from `rlvr datasets`, or a file")
    ev.add_argument("--model", default="tiny")
    ev.add_argument("--adapter", help="an adapter or checkpoint directory")
    ev.add_argument("--k", type=int, default=8)
    ev.add_argument("--temperature", type=float, default=1.0)
    ev.add_argument("--max-tokens", type=int, default=512)
    ev.add_argument("--limit", type=int)
    ev.add_argument("--policy", choices=("lenient", "strict"),
                    help="answer policy: lenient (plain equality, for external benchmarks) or strict (final answers); "
                         "default: the adapter's training policy for our problems, else lenient")
    ev.add_argument("--prompt", help="prompt template with {question}; default: the one the adapter was trained with")
    ev.add_argument("--system", help="the chat template's system turn; default: the one the adapter was trained with")
    ev.add_argument("--engine", default="hf", choices=("hf", "vllm"))
    ev.add_argument("--workers", type=int, default=1)
    ev.add_argument("--gpus-per-worker", type=float, default=0.0)
    ev.add_argument("--address", help="a Ray cluster to join (default: RAY_ADDRESS, else a local one)")
    ev.add_argument("--agent", choices=("solver-verifier", "code-feedback", "majority"),
                    help="evaluate a loop in which the model checks (solver-verifier) or runs (code-feedback) its work, "
                         "one trajectory per problem, accuracy per iteration; or majority: --k samples vote over "
                         "classes of SymPy-equal answers")
    ev.add_argument("--max-iterations", type=int, help="answers per problem in an --agent loop (default: 5 for "
                                                         "solver-verifier, as SLM-Math; 3 for code-feedback)")
    ev.add_argument("--verifier-model", help="solver-verifier: the checking model (default: the solver's)")
    ev.add_argument("--verifier-adapter", help="solver-verifier: the checking model's adapter (default: the solver's)")
    ev.add_argument("--code-timeout", type=float, default=10.0, help="code-feedback: wall-clock seconds per program")
    ev.add_argument("--json", help="also write the figures to this JSON file")
    ev.set_defaults(func=_cmd_eval if name == "eval" else _cmd_benchmark)


def _add_synth_parser(sub) -> None:
    synth = sub.add_parser("synth", help="generate SymPy-checked problems with worked solutions as JSONL")
    synth.add_argument("--difficulty", type=int, choices=(1, 2, 3), default=1)
    synth.add_argument("--n", type=int, default=100)
    synth.add_argument("--out", required=True)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--topics", help="comma-separated topic[:weight] list (default: every topic equally)")
    synth.add_argument("--source", choices=("generators", "grok"), default="generators",
                       help="generators: our SymPy-backed generators; grok: problems Grok-4 proposes and solves "
                            "through SymPy tools (XAI_API_KEY), hard ones twice, with their symbolic form when given")
    synth.add_argument("--cot", choices=("grok",), help="write chain-of-thought SFT rows (question, solution, answer): "
                       "Grok's worked solutions, kept only when the final answer matches SymPy's (needs XAI_API_KEY)")
    synth.add_argument("--data", help="--cot for the problems of a dataset (name or file, at most --n) instead of "
                                      "generated ones")
    synth.add_argument("--attempts", type=int, default=1,
                       help="--cot: calls per problem while the stated answer disagrees with SymPy's")
    synth.add_argument("--backup-url", help="--cot: an OpenAI-compatible endpoint asked after the attempts fail")
    synth.add_argument("--backup-model", help="--cot: the backup endpoint's model (default: --grok-model)")
    synth.add_argument("--backup-key-env", default="BACKUP_API_KEY", help="--cot: the environment variable holding "
                                                                          "the backup endpoint's key")
    synth.add_argument("--grok-model", default="grok-4")
    synth.add_argument("--api-host", default="api.x.ai")
    synth.add_argument("--insecure", action="store_true", help="plaintext channel (a local test server)")
    synth.add_argument("--concurrency", type=int, default=8)
    synth.set_defaults(func=_cmd_synth)


def _add_train_parsers(sub) -> None:
    train = sub.add_parser("train", help="run the training job (default: the tiny CPU preset)")
    train.add_argument("--preset", default="tiny", help="tiny | smollm2-135m | qwen2.5-0.5b | qwen2.5-1.5b")
    train.add_argument("--config", help="a YAML file merged over the preset")
    train.add_argument("--set", action="append", metavar="KEY=VALUE", help="override, e.g. learner.lr=2e-5 (repeatable)")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    train.add_argument("--force", action="store_true", help="resume even though a data-affecting setting changed")
    train.add_argument("--env", choices=("answer", "code-feedback", "solver-verifier"),
                       help="the episodes' environment (rollout.env; code-feedback also sets rollout.max_turns=2); "
                            "the SFT warm start adds the agent's turns")
    train.add_argument("--dataset", help="train one stage on a dataset by name (rlvr datasets) or file "
                                         "(curriculum.mode=fixed, stages=[{data: ...}])")
    train.add_argument("--algo", choices=("grpo", "raft"), help="algo=...")
    train.add_argument("--cycles", type=int, help="raft.cycles=...: passes over the stage's problems")
    train.add_argument("--init-adapter", help="start GRPO from this SFT adapter (rlvr sft --output) instead of the "
                                              "SFT warm start: init_adapter=..., sft.enabled=false")
    train.set_defaults(func=_cmd_train)
    sft = sub.add_parser("sft", help="the SFT warm start on its own, on a dataset by name or file; writes an adapter "
                                     "(or, with --mode full, a model directory)")
    sft.add_argument("--dataset", required=True, help="metamath, gsm8k, … (rlvr datasets) or a file sft.data reads")
    sft.add_argument("--max-samples", type=int, help="the first N rows")
    sft.add_argument("--output", required=True, help="the adapter's directory (the model's, with --mode full)")
    sft.add_argument("--mode", choices=("lora", "full"), default="lora", help="sft.mode: an adapter, or every weight")
    sft.add_argument("--preset", default="tiny")
    sft.add_argument("--config", help="a YAML file merged over the preset")
    sft.add_argument("--set", action="append", metavar="KEY=VALUE", help="override, e.g. sft.epochs=3")
    sft.set_defaults(func=_cmd_sft)
    datasets = sub.add_parser("datasets", help="the datasets known by name, their hub ids and local sample files")
    datasets.set_defaults(func=_cmd_datasets)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlvr", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser("verify", help="judge {gold, pred|completion} JSONL lines with the SymPy verifier")
    verify.add_argument("file")
    verify.add_argument("--out", help="write results here instead of stdout")
    verify.add_argument("--timeout", type=float, default=2.0, help="seconds per comparison")
    verify.add_argument("--policy", default="lenient", choices=("lenient", "strict"),
                        help="answer policy (strict uses each record's optional `question` and `form`)")
    verify.set_defaults(func=_cmd_verify)
    _add_synth_parser(sub)
    _add_train_parsers(sub)
    audit = sub.add_parser("audit-split", help="count facts shared between pretraining, SFT, GRPO and held-out data")
    audit.add_argument("--preset", default="tiny")
    audit.add_argument("--config")
    audit.add_argument("--set", action="append", metavar="KEY=VALUE")
    audit.set_defaults(func=_cmd_audit_split)
    _add_eval_parser(sub)
    _add_eval_parser(sub, "benchmark")
    rescore = sub.add_parser("rescore", help="recompute the rewards of a rollout log under other weights")
    rescore.add_argument("log")
    rescore.add_argument("--weights", help="e.g. correctness=0.6,format=0.0,consistency=0.1 (the rest default)")
    rescore.add_argument("--preset", default="dense8", choices=("dense8", "simple", "binary"),
                         help="reward preset: dense8 (weighted 8 signals), simple (1/0.2/0.1), binary (1/0)")
    rescore.add_argument("--timeout", type=float, default=2.0)
    rescore.add_argument("--out")
    rescore.set_defaults(func=_cmd_rescore)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

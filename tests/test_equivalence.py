"""Every answer family of the labelled corpus, from the main thread and from worker threads."""
import threading
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

from tests.conftest import load_jsonl
from verifier_pool import Verdict, answers_match, compare, extract_answer
from verifier_pool.equivalence import Unparsable, guard_latex as guard

PAIRS = load_jsonl("bench/data/verifier_pairs.jsonl")
COMPLETIONS = load_jsonl("bench/data/verifier_completions.jsonl")
# The corpus's unequal pairs are `wrong`, but for these adversarial answers, which no parser reads.
UNREADABLE = {r"9^{9^{9^9}}", r"\frac{1", "}}}{{{", "2**2**2**2**2**2", "99999999!", r"\sqrt{\sqrt{\sqrt{",
              r"10^{10^{10}}", "", "#@!$%^", r"\begin{pmatrix}1&2", "((((((((((", "@" * 5000}


def expected_verdict(row: dict) -> Verdict:
    if row["label"]:
        return Verdict.CORRECT
    return Verdict.UNPARSABLE if row["pred"] in UNREADABLE else Verdict.WRONG


@pytest.mark.parametrize("row", PAIRS, ids=lambda r: f"{r['family']}:{r['pred'][:20]}|{r['gold'][:12]}")
def test_pair(row):
    verdict = compare(row["pred"], row["gold"])
    assert verdict.equal is row["label"], verdict
    assert verdict.verdict == expected_verdict(row), verdict  # never `timeout`: every pair is decided in time


@pytest.mark.parametrize("row", COMPLETIONS, ids=lambda r: f"{r['family']}:{r['completion'][:25]}")
def test_completion(row):
    assert answers_match(extract_answer(row["completion"]), row["gold"]) is row["label"]


def test_corpus_covers_every_family():
    families = {r["family"] for r in PAIRS}
    required = {"integer", "decimal", "thousands", "unicode", "fraction", "radical", "constants", "powers",
                "factorial", "log_trig", "scientific", "symbolic", "equation", "units", "percent", "set",
                "tuple", "interval", "matrix", "choice", "complex", "tolerance", "adversarial"}
    assert required <= families
    assert len(PAIRS) >= 150 and len(COMPLETIONS) >= 30


def test_whole_corpus_from_worker_threads():
    """The same judgements from 4 concurrent threads (no signals, each thread its own sandbox)."""
    def judge(row):
        return compare(row["pred"], row["gold"]).equal is row["label"]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(judge, PAIRS))
    assert all(results)


@pytest.mark.parametrize("pred, verdict, reason", [
    (r"9^{9^{9^9}}", Verdict.UNPARSABLE, "exponent too large"),
    ("2**2**2**2**2**2", Verdict.UNPARSABLE, "exponent too large"),
    ("9" * 40 + "!", Verdict.UNPARSABLE, "factorial too large"),
    ("10^{999999999}", Verdict.UNPARSABLE, "exponent too large"),
    ("x" * 5000, Verdict.WRONG, ""),
    ("(" * 3000, Verdict.UNPARSABLE, "answer longer than 400 characters"),
    (r"\frac{1}{0}", Verdict.WRONG, ""),
    (r"\frac{1", Verdict.UNPARSABLE, "unbalanced brackets"),
    ("\x00\x01\x02" * 100, Verdict.UNPARSABLE, "unexpected character '\\x00'"),
    ("}" * 5000, Verdict.UNPARSABLE, "answer longer than 400 characters"),
])
def test_adversarial_inputs_are_refused_by_a_guard_from_a_thread(pred, verdict, reason):
    """Decided by the parser's guards, not by the deadline (the verdict is never `timeout`)."""
    out = {}
    thread = threading.Thread(target=lambda: out.setdefault("judged", compare(pred, "1", timeout=2.0)))
    thread.start()
    thread.join(60)  # a hang guard only: `compare` returns by its 2 s deadline at the latest
    judged = out["judged"]
    assert (judged.equal, judged.verdict, judged.reason) == (False, verdict, reason)


def test_hard_deadline_kills_a_call_that_overruns():
    """A sandbox call that sleeps past the deadline comes back as a timeout: the child is killed and replaced, and
    the sandbox keeps serving."""
    from verifier_pool import sandbox

    box = sandbox.SandboxProcess()
    try:
        assert box.call("ping", [], timeout=60) == "pong"
        sleeper = box.pid
        with pytest.raises(sandbox.SandboxTimeout):
            box.call("sleep", [30], timeout=0.5)
        assert not psutil.pid_exists(sleeper)  # SIGKILLed and reaped, not left sleeping
        assert box.restarts == 1 and box.pid != sleeper
        assert box.call("ping", [], timeout=60) == "pong"
    finally:
        box.kill()
    with pytest.raises(sandbox.SandboxTimeout):
        sandbox.run("sleep", (30,), timeout=0.5)
    assert compare(r"\frac{1}{2}", "0.5").equal


def test_symbolic_simplify_that_hangs_times_out():
    """An expression SymPy takes far too long to simplify (seconds to minutes) is cut at the deadline."""
    verdict = compare(r"(x+1)^{2000}", r"(x+2)^{2000} + x", timeout=1.0)
    assert (verdict.equal, verdict.verdict, verdict.reason) == (False, Verdict.TIMEOUT, "over the 1s deadline")
    assert compare(r"\sqrt{4}", "2").equal  # the killed sandbox was replaced


def test_crashed_sandbox_is_replaced_and_the_call_retried():
    from verifier_pool import sandbox

    with pytest.raises(sandbox.SandboxDied):
        box = sandbox.SandboxProcess()
        try:
            box.call("crash", [], 5.0)
        finally:
            box.kill()
    assert compare(r"\sqrt{4}", "2").equal


@pytest.mark.parametrize("text", ["x^{9^{9}}", "2^{3^{4}}", "10^{5000}", "3000!", "a" * 500])
def test_guard_refuses(text):
    with pytest.raises(Unparsable):
        guard(text)


@pytest.mark.parametrize("text", ["e^{x^2}", "x^2+y^2", "2^{10}", "10!", r"\frac{1}{2}"])
def test_guard_admits(text):
    guard(text)


def test_relative_tolerance_boundary():
    assert compare("0.3333333333", "1/3").equal
    assert not compare("0.333", "1/3").equal
    verdict = compare("101", "100")
    assert verdict.relative_error == pytest.approx(0.01)

"""Every answer family of the labelled corpus, from the main thread and from worker threads."""
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import load_jsonl
from verifier_pool import answers_match, compare, extract_answer
from verifier_pool.equivalence import Unparsable, guard_latex as guard

PAIRS = load_jsonl("bench/data/verifier_pairs.jsonl")
COMPLETIONS = load_jsonl("bench/data/verifier_completions.jsonl")


@pytest.mark.parametrize("row", PAIRS, ids=lambda r: f"{r['family']}:{r['pred'][:20]}|{r['gold'][:12]}")
def test_pair(row):
    verdict = compare(row["pred"], row["gold"])
    assert verdict.equal is row["label"], verdict
    assert verdict.verdict in ("correct", "wrong", "unparsable", "timeout")
    assert verdict.seconds < 2.5


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


@pytest.mark.parametrize(
    "pred",
    [r"9^{9^{9^9}}", "2**2**2**2**2**2", "9" * 40 + "!", "10^{999999999}", "x" * 5000, "(" * 3000, r"\frac{1}{0}",
     r"\frac{1", "\x00\x01\x02" * 100, "}" * 5000],
)
def test_adversarial_inputs_are_false_quickly_from_a_thread(pred):
    out = {}

    def run():
        start = time.perf_counter()
        out["verdict"] = compare(pred, "1", timeout=2.0)
        out["seconds"] = time.perf_counter() - start

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    assert out["verdict"].equal is False
    assert out["verdict"].verdict in ("unparsable", "timeout", "wrong")
    assert out["seconds"] < 2.5


def test_hard_deadline_kills_a_call_that_overruns():
    """A sandbox call that sleeps past the deadline comes back as a timeout, and the sandbox keeps serving."""
    from verifier_pool import sandbox

    start = time.perf_counter()
    with pytest.raises(sandbox.SandboxTimeout):
        sandbox.run("sleep", (30,), timeout=0.5)
    assert time.perf_counter() - start < 2.0
    assert compare(r"\frac{1}{2}", "0.5").equal


def test_symbolic_simplify_that_hangs_times_out():
    """An expression SymPy takes far too long to simplify still returns within the deadline."""
    start = time.perf_counter()
    verdict = compare(r"(x+1)^{2000}", r"(x+2)^{2000} + x", timeout=1.0)
    assert verdict.equal is False
    assert time.perf_counter() - start < 1.8


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

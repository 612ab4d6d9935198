"""The verifier as an adversary sees it: code payloads, hostile inputs and deadlines, restated questions
(strict policy), and the answer families other projects' tests check (see bench/data/math_verify_suite.jsonl)."""
from __future__ import annotations

import concurrent.futures
import io
import json
import os
import pathlib
import queue

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cluster.cli import verify_file
from verifier_pool import VERIFIER_VERSION, Verdict, compare, extract_answer, sandbox
from verifier_pool.equivalence import compare_inline
from verifier_pool.parse import Unparsable, parse_plain
from verifier_pool.reward import score
from verifier_pool.tools import ToolError, run_tool

DEADLINE = 1.0
READ_AS_TEXT = "\\boxed{\\text{exec('import os')}}"  # the one payload the verifier reads as words: `wrong`


def _refusal(payload: str) -> Verdict:
    """How a payload answering gold 5 is refused: `1 if ... else 0` is a conditional final (`hedged`)."""
    if payload.startswith("1 if "):
        return Verdict.HEDGED
    return Verdict.WRONG if payload == READ_AS_TEXT else Verdict.UNPARSABLE


def _payloads(marker: pathlib.Path) -> list[str]:
    touch = f"touch {marker}"
    return [
        f"__import__('os').system('{touch}')",
        f"__import__(\"os\").system(\"{touch}\")",
        "().__class__.__bases__[0].__subclasses__()",
        f"getattr(__import__('os'), 'system')('{touch}')",
        f"(lambda: __import__('os').system('{touch}'))()",
        f"exec(\"import os; os.system('{touch}')\")",
        f"eval(\"__import__('os').system('{touch}')\")",
        f"open('{marker}', 'w').write('x')",
        f"__builtins__.__import__('os').system('{touch}')",
        "[c for c in ().__class__.__base__.__subclasses__()]",
        "Symbol('x').__class__.__init__.__globals__",
        f"\\boxed{{__import__('os').system('{touch}')}}",
        f"\\text{{__import__('os').system('{touch}')}}",
        READ_AS_TEXT,
        f"x + __import__('os').system('{touch}')",
        f"sympy.core.sympify.sympify(\"__import__('os').system('{touch}')\")",
        "globals()['__builtins__']",
        f"os.system('{touch}')",
        f"Lambda(x, __import__('os').system('{touch}'))",
        "compile('import os', 'f', 'exec')",
        f"1 if __import__('os').system('{touch}') else 0",
        f"{{'a': __import__('os').system('{touch}')}}",
    ]


@pytest.fixture()
def marker(tmp_path) -> pathlib.Path:
    return tmp_path / "pwned"


def test_code_payloads_never_run_nor_earn_credit(marker):
    payloads = _payloads(marker)
    assert len(payloads) == 22
    for payload in payloads:
        unread = Verdict.WRONG if payload == READ_AS_TEXT else Verdict.UNPARSABLE
        assert compare(payload, "5").verdict == _refusal(payload) and compare("5", payload).verdict == unread
        not_final = Verdict.HEDGED if _refusal(payload) == Verdict.HEDGED else Verdict.NOT_FINAL
        assert compare(payload, "5", policy="strict").verdict == not_final
        assert compare("5", payload, policy="strict").verdict == unread
        b = score(f"<final_answer>{payload}</final_answer>", "What is 2 + 3?", "5")
        assert b.correctness == 0.0 and b.verdict == not_final
        b = score(f"The answer is \\boxed{{{payload}}}", "What is 2 + 3?", payload)
        assert b.extracted == payload and b.verdict == Verdict.CORRECT  # the same string: matched, never parsed
    lines = [json.dumps({"gold": "5", "pred": p}) for p in payloads] + [json.dumps({"gold": p, "pred": p}) for p in payloads]
    out = io.StringIO()
    verify_file(io.StringIO("\n".join(lines)), out, timeout=2.0)
    assert [json.loads(row)["verdict"] for row in out.getvalue().splitlines()] == [
        _refusal(p) for p in payloads] + ["correct"] * len(payloads)
    for payload in payloads:
        for name, args in [("evaluate", {"expression": payload}), ("solve", {"equation": payload, "variable": "x"}),
                           ("diff", {"expression": "x", "variable": payload})]:
            with pytest.raises(ToolError):
                run_tool(name, json.dumps(args))
    assert not marker.exists()


def test_a_payload_that_equals_itself_is_only_a_string_match(marker):
    """Identical strings are equal (never parsed); the payload still never executes."""
    payload = _payloads(marker)[0]
    assert compare(payload, payload).equal
    assert not marker.exists()


def test_plain_parser_whitelist():
    import sympy

    assert parse_plain("2x^2 + 3x - 1") == 2 * sympy.Symbol("x") ** 2 + 3 * sympy.Symbol("x") - 1
    assert parse_plain("\\frac{\\sqrt{3}}{2}") == sympy.sqrt(3) / 2
    assert parse_plain("5!") == 120 and parse_plain("sqrt(8)") == 2 * sympy.sqrt(2)
    for bad in ["a.b", "x__y", "'s'", "lambda: 1", "f(x).y", "x;y", "Mod(3, 7)", "integrate(x, x)", "9^9^9^9",
                "3000!", "1e999999", "(" * 200 + "1" + ")" * 200]:
        with pytest.raises(Unparsable):
            parse_plain(bad)


def test_sandbox_child_has_empty_environment_and_limits(monkeypatch):
    monkeypatch.setenv("XAI_API_KEY", "secret-key")
    box = sandbox.SandboxProcess()
    try:
        env = box.call("environ", [], timeout=30)
        assert "XAI_API_KEY" not in env and "HOME" not in env and set(env) <= {
            "PYTHONPATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "LC_ALL"}
        assert os.getsid(box.pid) == box.pid  # its own session
        limits = open(f"/proc/{box.pid}/limits").read()
        address_space = next(line for line in limits.splitlines() if line.startswith("Max address space"))
        assert str(sandbox.MEMORY_LIMIT_BYTES) in address_space
        cpu = next(line for line in limits.splitlines() if line.startswith("Max cpu time"))
        assert "unlimited" != cpu.split()[3]
    finally:
        box.kill()



def test_a_sandbox_killed_while_starting_costs_no_result_one_that_crashes_serving_gets_one_retry(monkeypatch):
    """Deaths before the child saw the call (killed from outside, as under a loaded machine) are replaced without
    counting; a child that dies on the call itself is retried once, then the call fails (a verdict, upstream)."""
    real_spawn, spawned = sandbox.SandboxProcess._spawn, []

    def spawn_dying_twice(self) -> None:
        real_spawn(self)
        spawned.append(self.proc.pid)
        if len(spawned) <= 2:
            self.proc.kill()
            self.proc.wait()

    monkeypatch.setattr(sandbox.SandboxProcess, "_spawn", spawn_dying_twice)
    monkeypatch.setattr(sandbox, "_idle", queue.LifoQueue())
    assert sandbox.run("ping", (), timeout=30) == "pong" and len(spawned) == 3
    with pytest.raises(sandbox.SandboxDied):
        sandbox.run("crash", (), timeout=30)
    assert len(spawned) == 5  # the crash, its one retry

U, W, C, NF = Verdict.UNPARSABLE, Verdict.WRONG, Verdict.CORRECT, Verdict.NOT_FINAL
# Each hostile text with its verdicts as pred (gold "1"), as gold (pred "1"), as both, and as a whole completion
# scored against "1": every one decided by a guard or by plain arithmetic, none by a deadline.
HOSTILE = [
    ("1 " + "m" * 40 + "!", (U, U, C, C)),
    ("1e10000000", (W, W, C, W)),
    ("9" * 5000, (U, U, C, NF)),
    ("1" + "0" * 5000 + " cm", (U, U, C, NF)),
    ("x" * 1_000_000, (U, U, U, U)),
    ("(" * 5000 + "1" + ")" * 5000, (U, U, U, C)),
    ("{" * 3000 + "}" * 3000, (U, U, C, U)),
    ("\\frac{" * 500 + "1" + "}{2}" * 500, (U, U, C, W)),
    ("9^{9^{9^{9}}}", (U, U, C, W)),
    ("1 " + "mm " * 3000 + "!", (U, U, C, C)),
    ("$" * 100_000, (U, U, U, U)),
    ("\\boxed{" * 50_000, (U, U, U, U)),
    (" " * 100_000 + "1", (U, U, U, C)),
    ("10^{10^{10}}", (U, U, C, W)),
    ("(1,100)", (W, W, C, W)),
]


def _judge_all(deadline: float) -> list[tuple]:
    """Each hostile text's verdicts (see HOSTILE), judged under `deadline`."""
    out = []
    for text, _ in HOSTILE:
        verdicts = tuple(compare(pred, gold, timeout=deadline).verdict
                         for pred, gold in ((text, "1"), ("1", text), (text, text)))
        out.append(verdicts + (score(text, "What is 1?", "1", timeout=deadline).verdict,))
        assert extract_answer(text) is None or isinstance(extract_answer(text), str)
    return out


def _assert_judged(verdicts: list[tuple]) -> None:
    assert verdicts == [expected for _, expected in HOSTILE]


def test_hostile_inputs_are_judged_in_the_main_thread():
    compare("\\sqrt{2}", "1.41")  # start the sandbox
    _assert_judged(_judge_all(DEADLINE))


def test_hostile_inputs_are_judged_in_a_worker_thread():
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        _assert_judged(pool.submit(_judge_all, DEADLINE).result(timeout=600))


@pytest.mark.ray
def test_hostile_inputs_are_judged_inside_a_ray_actor(ray_cluster):
    @ray_cluster.remote(num_cpus=0)
    class Judge:
        def run(self, deadline: float) -> list[tuple]:
            import tests.test_verifier_trust as t

            compare("\\sqrt{2}", "1.41")
            return [tuple(v.value for v in row) for row in t._judge_all(deadline)]  # plain strings over the wire

    judge = Judge.remote()
    _assert_judged(ray_cluster.get(judge.run.remote(DEADLINE), timeout=600))
    ray_cluster.kill(judge)


def test_oversized_numbers_are_verdicts_not_exceptions():
    assert compare("1e10000000", "1", timeout=0.5).verdict == "wrong"
    assert compare("9" * 5000, "9" * 5000).equal
    assert not compare("9" * 5000, "9" * 4999 + "8").equal
    assert compare("1", "9" * 5000).verdict == Verdict.UNPARSABLE  # a gold over the 400-character parse limit
    out = io.StringIO()
    verify_file(io.StringIO(json.dumps({"gold": "1" + "0" * 400, "pred": "1e400"}) + "\n"), out, timeout=1.0)
    assert json.loads(out.getvalue())["equal"] is True


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(min_size=0, max_size=300), st.sampled_from(["42", "\\frac{1}{2}", "x^2+1", "(1, 2)"]))
def test_fuzzed_text_gets_the_same_verdict_in_the_sandbox_as_in_process(text, gold):
    """Lenient judging never says `not_final`, never fails (`error`), and the sandbox agrees with the in-process
    comparison unless it cut the call at the deadline."""
    inline = compare_inline(text, gold)
    assert inline.verdict in (Verdict.CORRECT, Verdict.WRONG, Verdict.UNPARSABLE, Verdict.HEDGED)
    judged = compare(text, gold, timeout=DEADLINE)
    assert judged.verdict in (inline.verdict, Verdict.TIMEOUT), (judged, inline)
    assert judged.equal is (judged.verdict == Verdict.CORRECT)
    extract_answer(text)


# ---------------------------------------------------------------- strict policy

QUESTION = "What is 7 * 8?"


@pytest.mark.parametrize("pred, reason", [
    ("The answer is 7 * 8", "not a number in final form"), ("7 * 8", "restates the question"),
    ("7 \\times 8", "restates the question"), ("(11 - 4) - 5", "arithmetic left undone"),
    ("Mod(3**10, 7)", "not a number in final form"), ("integrate(x*sin(x), (x, 0, 1))", "not a number in final form"),
    ("\\frac{112}{2}", "fraction not in lowest terms"), ("112/2", "fraction not in lowest terms"),
    ("50 + 6", "arithmetic left undone"), ("8 \\cdot 7", "arithmetic left undone")])
def test_strict_refuses_arithmetic_left_undone(pred, reason):
    v = compare(pred, "56", policy="strict", question=QUESTION)
    assert (v.equal, v.verdict, v.reason) == (False, Verdict.NOT_FINAL, reason)
    b = score(f"<final_answer>{pred}</final_answer>", QUESTION, "56", policy="strict")
    assert b.correctness == 0.0 and b.verdict == Verdict.NOT_FINAL


@pytest.mark.parametrize("pred,gold", [("56", "56"), ("56.0", "56"), ("\\frac{7}{2}", "7/2"), ("3.5", "7/2"),
                                       ("2\\sqrt{2}", "2*sqrt(2)"), ("\\frac{1+\\sqrt{5}}{2}", "1/2 + sqrt(5)/2"),
                                       ("-\\frac{3}{4}", "-3/4"), ("3\\pi", "3*pi"), ("\\frac{\\pi}{2}", "pi/2"),
                                       ("1.2 \\times 10^{5}", "120000"), ("x = 4", "4"), ("\\sqrt{2}+\\sqrt{5}", "sqrt(2)+sqrt(5)"),
                                       # SymPy's own spelling of the generators' answers is final too
                                       ("5/8 - sqrt(105)/8", "5/8 - sqrt(105)/8"), ("-sqrt(13)/2 - 1/2", "-1/2 - sqrt(13)/2"),
                                       ("e^2", "exp(2)"), ("3\\pi^{2}", "3*pi**2"),
                                       ("4\\sin(4) + \\cos(4) - \\cos(1) - \\sin(1)", "4*sin(4) - sqrt(2)*sin(pi/4 + 1) + cos(4)")])
def test_strict_credits_final_forms(pred, gold):
    assert compare(pred, gold, policy="strict", question="Compute it.").equal


@pytest.mark.parametrize("pred,gold", [("10/16 - sqrt(105)/8", "5/8 - sqrt(105)/8"), ("1/2 + 1/2 + sqrt(3)", "1 + sqrt(3)"),
                                       ("2*exp(2) - exp(2) + sin(1) - sin(1)", "exp(2)"), ("e*e", "exp(2)")])
def test_strict_still_refuses_undone_arithmetic_around_such_forms(pred, gold):
    assert compare(pred, gold, policy="strict", question="Compute it.").verdict == Verdict.NOT_FINAL


@pytest.mark.parametrize("pred,why", [("\\sqrt{8}", "surd"), ("\\frac{84}{2}", "lowest"), ("\\frac{2}{4}", "lowest"),
                                      ("\\sqrt{12}", "surd"), ("\\sqrt{2}+\\sqrt{2}", "like terms")])
def test_strict_names_why_a_form_is_not_final(pred, why):
    v = compare(pred, "42", policy="strict")
    assert v.verdict == "not_final" and why in v.reason


def test_lenient_is_plain_equality():
    for pred in ["7 * 8", "\\frac{112}{2}", "50 + 6"]:
        assert compare(pred, "56").equal


def test_strict_checks_the_form_that_is_the_task():
    q = "Factor completely: x^2 + 5*x + 6."
    assert compare("(x+2)(x+3)", "(x + 2)*(x + 3)", policy="strict", question=q, form="factored").equal
    assert compare("x^2+5x+6", "(x + 2)*(x + 3)", policy="strict", question=q, form="factored").verdict == "not_final"
    q = "Expand (x + 2)(x + 3)."
    assert compare("x^2+5x+6", "x^2 + 5*x + 6", policy="strict", question=q, form="expanded").equal
    assert compare("(x+2)(x+3)", "x^2 + 5*x + 6", policy="strict", question=q, form="expanded").verdict == "not_final"
    assert compare("(x+3)(x+2)", "x^2 + 5*x + 6", policy="strict", question=q, form="expanded").verdict == "not_final"
    assert compare("x(x+5)+6", "x^2 + 5*x + 6", policy="strict", question="Expand it.", form="expanded").verdict == "not_final"
    q = "Simplify (x^2 - 4)/(x - 2)."
    assert compare("x+2", "x + 2", policy="strict", question=q, form="simplified").equal
    assert compare("(x^2-4)/(x-2)", "x + 2", policy="strict", question=q, form="simplified").verdict == "not_final"


def test_generated_problems_carry_their_form():
    from synthesis.generators import generate_problems

    forms = {p.meta["template"].split("/")[1]: p.form for p in generate_problems(60, 2, topics={"polynomials": 1.0}, seed=3)}
    assert forms.get("factor") == "factored"
    assert all(form == "" for task, form in forms.items() if task not in ("factor", "expand", "simplify"))


def test_reward_and_records_carry_the_verifier_version():
    b = score("<final_answer>56</final_answer>", QUESTION, "56")
    assert b.verifier_version == VERIFIER_VERSION and b.to_dict()["verifier_version"] == VERIFIER_VERSION


# ---------------------------------------------------------------- families (each case cites its source)

MV = "huggingface/Math-Verify tests/test_all.py"
FAMILIES = [
    # extraction
    (MV, "Final Answer: The final answer is $28 \\%$. I hope it is correct.", "28", True),
    (MV, "Final Answer: The largest $n$ is 34.", "34", True),
    (MV, "Answer $ 9 $", "9", True),
    (MV, "Answer \\( 9 \\)", "9", True),
    (MV, "$0.04 \\cdot 10,000 = \\boxed{200}$ so ... $\\boxed{255}$ Final Answer: The final answer is $10,455$. I hope it is correct.",
     "10455", True),
    (MV, "Here is a zero matrix: $ \\begin{pmatrix}0 & 0 \\\\0 & 0\\end{pmatrix} $", "\\begin{bmatrix}0 & 0 \\\\0 & 0\\end{bmatrix}", True),
    (MV, "The solution to the inequality is \\( x \\in (-6, 10) \\). Final Answer: The final answer is \\((-6, 10)\\).", "(-6, 10)", True),
    ("Minerva (Lewkowycz et al. 2022)", "Final Answer: The final answer is $\\frac{3}{4}$. I hope it is correct.", "3/4", True),
]
PAIRS = [
    (MV, "x \\le 5", "5 \\ge x", True), (MV, "x < 1", "-x > -1", True), (MV, "x > 5", "x < 5", False),
    (MV, "2x+4y-3=0", "y=-\\frac12 x+\\frac34", True), (MV, "x \\in [-2,7]", "[-2, 7]", True),
    (MV, "1 \\pm \\sqrt{19}", "\\{1+\\sqrt{19}, 1-\\sqrt{19}\\}", True), (MV, "12 \\text{ and } 13", "12, 13", True),
    (MV, "10,\\!000", "10000", True), (MV, "14{,}916", "14916", True), (MV, "4210_{7}", "4210_7", True),
    (MV, "125\\textnormal{ miles}", "125", True), (MV, "28 pct", "28", True), ("Math-Verify issue (times)", "12:00", "12:00", True),
    (MV, "5\\\\", "5", True), (MV, "\\{(1,2),(1,2)\\}", "\\{(1,2)\\}", True), ("issue 11 (false positive)", "1100", "(1,100)", False),
    (MV, "(1,100)", "1100", False), (MV, "32, 349", "32349", False), (MV, "x = 5+5+1 = 7 =11", "x=11", True),
    (MV, "7 = 11a+c", "11a+c", False), ("QwenLM/Qwen2.5-Math grader", "\\frac{\\sqrt{2}}{2}", "\\sqrt{2}/2", True),
    ("QwenLM/Qwen2.5-Math grader", "[2,5)", "(2,5)", False),
]


@pytest.mark.parametrize("source,completion,gold,label", FAMILIES)
def test_extraction_families(source, completion, gold, label):
    assert compare(extract_answer(completion), gold).equal is label, source


@pytest.mark.parametrize("source,pred,gold,label", PAIRS)
def test_equivalence_families(source, pred, gold, label):
    assert compare(pred, gold).equal is label, source


def test_identical_normalised_strings_are_equal():
    for s in ["12:00", "\\text{Evelyn}", "204_5", "f(2) < f(1) < f(4)", "\\frac{\\pi r}{h+r}"]:
        assert compare(s, s).equal and compare(f"${s}$", s).equal


@pytest.mark.parametrize("pred, gold, equal", [
    ("1000001", "1000000", False), ("3793093/197120", "3793091/197120", False),
    ("\\frac{3793093}{197120}", "3793091/197120", False), ("-123456789", "-123456788", False),
    ("6/4", "3/2", True), ("1000000", "1000000", True), ("1.000001", "1", True), ("0.3333333", "1/3", True)])
def test_exactly_written_numbers_compare_exactly(pred, gold, equal):
    """No tolerance between two exact numbers: a big answer off by one is wrong, not within 1e-6 of right."""
    assert compare(pred, gold).equal is equal and compare(pred, gold, policy="strict").equal is (equal and pred != "6/4")

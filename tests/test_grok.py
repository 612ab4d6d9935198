"""The Grok resolver against a fake xAI server speaking the SDK's real gRPC protocol on 127.0.0.1: tool calls,
answers taken from our SymPy execution, double solves that disagree, malformed arguments, rate limits,
timeouts and hard failures."""
import asyncio
import threading
import time
from concurrent import futures

import grpc
import pytest

pytest.importorskip("xai_sdk")
from xai_sdk.proto import chat_pb2, chat_pb2_grpc  # noqa: E402

from synthesis.grok import GrokResolver, ResolverConfig, ToolError, run_tool  # noqa: E402
from synthesis.problem import fact_key  # noqa: E402

KEY = "xai-test-secret-key"


def call(name: str, arguments: str, call_id: str = "c1"):
    return chat_pb2.ToolCall(id=call_id, function=chat_pb2.FunctionCall(name=name, arguments=arguments))


def reply(content: str = "", tool_calls=()):
    message = chat_pb2.CompletionMessage(role=chat_pb2.MessageRole.ROLE_ASSISTANT, content=content,
                                         tool_calls=list(tool_calls))
    return chat_pb2.GetChatCompletionResponse(id="r", model="grok-4", outputs=[chat_pb2.CompletionOutput(message=message)])


# Per topic: (tool call of the first turn, final text); the "second solve" conversations are scripted apart.
SCRIPTS = {
    "algebra": (call("solve", '{"equation": "2*x + 3 = 11", "variable": "x"}'),
                "The answer is 5.\nQUESTION: Solve 2x + 3 = 11 for x."),
    "calculus": (call("integrate", '{"expression": "x^2", "variable": "x", "lower": "0", "upper": "3"}'),
                 "QUESTION: Evaluate the integral of x^2 from 0 to 3."),
    "disagree": (call("evaluate", '{"expression": "7"}'), "QUESTION: How many days are in a week, minus zero?"),
    "malformed": (call("evaluate", "{not json"), None),
    "refused": (call("evaluate", '{"expression": "9^9^9^9"}'), "QUESTION: What is 9^9^9^9?"),
    "ratelimit": (call("evaluate", '{"expression": "3/4 + 5/6"}'), "QUESTION: Add 3/4 and 5/6."),
    "slow": (call("diff", '{"expression": "x^3", "variable": "x"}'), "QUESTION: Differentiate x^3."),
}
SECOND_SOLVES = {"integral of x^2": call("evaluate", '{"expression": "9"}'),
                 "days are in a week": call("evaluate", '{"expression": "8"}')}


class FakeChat(chat_pb2_grpc.ChatServicer):
    """Scripted by the user prompt; counts attempts per conversation and records the metadata it saw."""

    def __init__(self) -> None:
        self.attempts: dict[str, int] = {}
        self.authorization: set[str] = set()
        self.lock = threading.Lock()

    def GetCompletion(self, request, context):
        self.authorization.update(v for k, v in context.invocation_metadata() if k == "authorization")
        prompt = next(m.content[0].text for m in request.messages if m.role == chat_pb2.MessageRole.ROLE_USER)
        tool_results = [m.content[0].text for m in request.messages if m.role == chat_pb2.MessageRole.ROLE_TOOL]
        with self.lock:
            self.attempts[prompt] = self.attempts.get(prompt, 0) + 1
            attempt = self.attempts[prompt]
        if prompt.startswith("Solve this problem"):
            second = next(c for key, c in SECOND_SOLVES.items() if key in prompt)
            return reply(tool_calls=[second]) if not tool_results else reply("QUESTION: (same)")
        if "never" in prompt.split():
            context.abort(grpc.StatusCode.UNAVAILABLE, "down")
        if "forbidden" in prompt.split():
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "bad key")
        topic = next(t for t in SCRIPTS if t in prompt.split())
        if topic == "ratelimit" and attempt == 1:
            context.set_trailing_metadata((("retry-after", "0.05"),))
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "rate limited")
        if topic == "slow" and attempt <= 2:
            time.sleep(1.0)
        first_call, final = SCRIPTS[topic]
        if not tool_results:
            return reply(tool_calls=[first_call])
        if topic == "malformed" and len(tool_results) == 1:
            assert tool_results[0].startswith("error: arguments are not JSON")
            return reply(tool_calls=[call("evaluate", '{"expression": "2**10"}', "c2")])
        return reply(final or "QUESTION: What is 2 to the 10th power?")


@pytest.fixture(scope="module")
def fake_server():
    servicer = FakeChat()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    chat_pb2_grpc.add_ChatServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, port
    server.stop(0)


def resolver(port: int, **overrides) -> GrokResolver:
    cfg = ResolverConfig(api_host=f"127.0.0.1:{port}", insecure=True, call_timeout=0.5, backoff_base=0.01,
                         max_retries=3, concurrency=4, **overrides)
    return GrokResolver(cfg, api_key=KEY)


def test_run_tool_executes_sympy_and_rejects_bad_input():
    assert run_tool("solve", '{"equation": "x^2 = 9", "variable": "x"}') == "{-3, 3}"
    assert run_tool("integrate", '{"expression": "2*x", "variable": "x", "lower": 0, "upper": 2}') == "4"
    for name, args in [("evaluate", "{"), ("nope", "{}"), ("evaluate", '{"expression": "9^9^9^9"}'),
                       ("evaluate", '{"expression": "(("}'), ("evaluate", "[1]")]:
        with pytest.raises(ToolError):
            run_tool(name, args)


def test_resolver_keeps_sympy_answers_and_survives_every_scripted_failure(fake_server):
    servicer, port = fake_server
    grok = resolver(port)
    assert KEY not in repr(grok)
    requests = [("algebra", 1), ("calculus", 3), ("disagree", 3), ("malformed", 2), ("refused", 1),
                ("ratelimit", 1), ("slow", 2), ("never", 1), ("forbidden", 1)]
    outcomes = {o.topic: o for o in asyncio.run(grok.resolve_many(requests))}

    assert outcomes["algebra"].problem.answer == "4"  # SymPy's solve, not the model's "5"
    assert outcomes["algebra"].problem.question == "Solve 2x + 3 = 11 for x."
    assert outcomes["calculus"].problem.answer == "9" and outcomes["calculus"].answers == ["9", "9"]
    assert outcomes["disagree"].problem is None and outcomes["disagree"].reason == "the two solves disagree"
    assert outcomes["malformed"].problem.answer == "1024"
    assert outcomes["refused"].problem is None and outcomes["refused"].reason == "no tool result"
    assert outcomes["ratelimit"].problem.answer == "19/12" and outcomes["ratelimit"].retries == 1
    assert outcomes["slow"].problem.answer == "3*x^2" and outcomes["slow"].retries == 2
    assert outcomes["never"].problem is None and "gave up after 4 attempts" in outcomes["never"].reason
    assert outcomes["forbidden"].problem is None and "AioRpcError" in outcomes["forbidden"].reason
    assert servicer.authorization == {f"Bearer {KEY}"}
    kept = [o.problem for o in outcomes.values() if o.problem]
    assert all(p.source == "grok" and p.meta["model"] == "grok-4" for p in kept)


def test_missing_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("XAI_API_KEY", raising=False)
    with pytest.raises(RuntimeError, match="XAI_API_KEY"):
        GrokResolver(ResolverConfig())


class FakeCotChat(chat_pb2_grpc.ChatServicer):
    """Answers each question with the scripted worked solution; the first call for a rate-limited one is refused."""

    def __init__(self, scripts: dict[str, str], ratelimited: str) -> None:
        self.scripts, self.ratelimited, self.calls = scripts, ratelimited, {}
        self.lock = threading.Lock()

    def GetCompletion(self, request, context):
        question = next(m.content[0].text for m in request.messages if m.role == chat_pb2.MessageRole.ROLE_USER)
        assert not request.tools  # a worked solution, written without tools
        with self.lock:
            self.calls[question] = self.calls.get(question, 0) + 1
            first = self.calls[question] == 1
        if question == self.ratelimited and first:
            context.set_trailing_metadata((("retry-after", "0.05"),))
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "rate limited")
        return reply(self.scripts[question])


def test_synth_cot_grok_keeps_only_solutions_whose_final_answer_is_sympys(tmp_path, monkeypatch, capsys):
    """`rlvr synth --cot grok` against a fake xAI server: right, wrong, answerless, oversized and hostile
    solutions; only the right ones (one after a rate limit) are written, as `sft.data` rows."""
    from cluster.cli import main
    from synthesis.generators import generate_problems
    from synthesis.sft_data import load_sft_rows

    problems = generate_problems(6, 1, topics={"mental_math": 1.0}, seed=3)  # as the CLI parses `--topics`
    p = problems
    scripts = {p[0].question: f"Work it out.\nThe answer is: {p[0].answer}",
               p[1].question: f"Work it out.\nThe answer is: {p[1].answer}1",
               p[2].question: "I am not sure how to do this one.",
               p[3].question: "step\n" * 2000 + f"The answer is: {p[3].answer}",
               p[4].question: f"Line one.\nThe answer is: {p[4].answer}",
               p[5].question: "The answer is: 9^9^9^9^9^9"}
    servicer = FakeCotChat(scripts, ratelimited=p[4].question)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    chat_pb2_grpc.add_ChatServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    monkeypatch.setenv("XAI_API_KEY", KEY)
    out = tmp_path / "cot.jsonl"
    try:
        assert main(["synth", "--cot", "grok", "--n", "6", "--difficulty", "1", "--topics", "mental_math",
                     "--seed", "3", "--out", str(out), "--api-host", f"127.0.0.1:{port}", "--insecure"]) == 0
    finally:
        server.stop(0)
    err = capsys.readouterr().err
    assert "kept 2/6" in err and "2 final answer differs from SymPy's" in err and "1 no final answer" in err
    rows, skipped = load_sft_rows(str(out))
    assert skipped == 0 and [r.prompt for r in rows] == [p[0].question, p[4].question]
    assert [r.answer for r in rows] == [p[0].answer, p[4].answer] and servicer.calls[p[4].question] == 2
    assert all(r.kind == "cot" and r.fact_key() == fact for r, fact in
               zip(rows, [fact_key(p[0]), fact_key(p[4])]))


SYNTH_SCRIPTS = {  # topic word → (first tool call, final text, second-solve tool call)
    "algebra": (call("solve", '{"equation": "2*x + 3 = 11", "variable": "x"}'),
                'SYMBOLIC: {"style": "equation", "target": ["x"], "unknowns": ["x"], "quantities": [{"name": "a", '
                '"value": 2, "low": 1, "high": 9}, {"name": "b", "value": 3, "low": 0, "high": 9}, {"name": "c", '
                '"value": 11, "low": 0, "high": 50}], "constraints": [{"lhs": "a*x + b", "op": "=", "rhs": "c"}], '
                '"text": "Solve for x: {equations}."}\nQUESTION: Solve 2x + 3 = 11 for x.',
                call("evaluate", '{"expression": "4"}')),
    "hostile": (call("evaluate", '{"expression": "7"}'),
                'SYMBOLIC: {"style": "expression", "target": ["__import__(\'os\').system(\'id\')"]}\n'
                "QUESTION: What is 3 + 4?", call("evaluate", '{"expression": "7"}')),
    "mismatch": (call("evaluate", '{"expression": "12"}'),
                 'SYMBOLIC: {"style": "expression", "target": ["a + b"], "quantities": [{"name": "a", "value": 5, '
                 '"low": 1, "high": 9}, {"name": "b", "value": 6, "low": 1, "high": 9}], "text": "What is {expr}?"}'
                 "\nQUESTION: What is 5 + 7?", call("evaluate", '{"expression": "12"}')),
    "malformed": (call("evaluate", "{not json"), "QUESTION: What is 2 to the 10th power?",
                  call("evaluate", '{"expression": "2^10"}')),
    "disagree": (call("evaluate", '{"expression": "7"}'), "QUESTION: How many days are in a week, minus zero?",
                 call("evaluate", '{"expression": "8"}')),
}


class FakeSynthChat(chat_pb2_grpc.ChatServicer):
    """Scripted by the topic word in the prompt; the second solve (given only the question) by that question."""

    def GetCompletion(self, request, context):
        prompt = next(m.content[0].text for m in request.messages if m.role == chat_pb2.MessageRole.ROLE_USER)
        results = [m.content[0].text for m in request.messages if m.role == chat_pb2.MessageRole.ROLE_TOOL]
        if prompt.startswith("Solve this problem"):
            second = next(s[2] for s in SYNTH_SCRIPTS.values() if s[1].split("QUESTION: ")[1] in prompt)
            return reply(tool_calls=[second]) if not results else reply("QUESTION: (same)")
        first, final, _ = SYNTH_SCRIPTS[next(t for t in SYNTH_SCRIPTS if t in prompt.split())]
        if not results:
            return reply(tool_calls=[first])
        if results[-1].startswith("error:"):
            return reply(tool_calls=[call("evaluate", '{"expression": "2**10"}', "c2")])
        return reply(final)


def test_synth_source_grok_writes_sympy_answered_problems_with_checked_forms_a_stage_can_train_on(
        tmp_path, monkeypatch, capsys):
    """`rlvr synth --source grok` at difficulty 3 (every problem solved twice) against the fake server: answers are
    SymPy's, a form is kept only when SymPy derives the same answer from it (a hostile form is refused unread, a
    form with another answer dropped), every outcome is counted, and the file is a stage's training data."""
    from cluster.cli import main
    from cluster.config import load_config
    from synthesis.datasets import load_problems
    from synthesis.symbolic import realise

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    chat_pb2_grpc.add_ChatServicer_to_server(FakeSynthChat(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    monkeypatch.setenv("XAI_API_KEY", KEY)
    out = tmp_path / "grok.jsonl"
    try:
        assert main(["synth", "--source", "grok", "--n", "5", "--difficulty", "3", "--topics",
                     "algebra,hostile,mismatch,malformed,disagree", "--out", str(out), "--api-host",
                     f"127.0.0.1:{port}", "--insecure"]) == 0
    finally:
        server.stop(0)
    err = capsys.readouterr().err
    assert "kept 4/5 problems answered by SymPy; 1 the two solves disagree" in err
    assert all(f"1 {what}" in err for what in ("kept", "form rejected: ", "form's answer differs from the tools'",
                                                "none given"))
    problems = {p.topic: p for p in load_problems(str(out))}
    assert sorted(problems) == ["algebra", "hostile", "malformed", "mismatch"]
    assert problems["algebra"].answer == "4" and realise(problems["algebra"].symbolic) == "Solve for x: 2*x + 3 = 11."
    assert problems["malformed"].answer == "1024" and problems["mismatch"].answer == "12"
    assert all(problems[t].symbolic is None for t in ("hostile", "mismatch", "malformed"))
    cfg = load_config("tiny", overrides=["curriculum.mode=fixed",
                                         f"stages=[{{name: grok, difficulty: 3, data: {out}, epochs: 1}}]"])
    from cluster.schedule import stage_pool

    assert {p.question for p in stage_pool(cfg, 0, exclude=set())} == {p.question for p in problems.values()}


class FlakyCotChat(chat_pb2_grpc.ChatServicer):
    """Per question, the scripted solutions in turn (the last one repeated)."""

    def __init__(self, scripts: dict[str, list[str]]) -> None:
        self.scripts, self.calls, self.lock = scripts, {}, threading.Lock()

    def GetCompletion(self, request, context):
        question = next(m.content[0].text for m in request.messages if m.role == chat_pb2.MessageRole.ROLE_USER)
        with self.lock:
            self.calls[question] = self.calls.get(question, 0) + 1
            n = self.calls[question]
        script = self.scripts[question]
        return reply(script[min(n, len(script)) - 1])


def test_synth_cot_retries_then_asks_the_backup_endpoint_for_dataset_problems(tmp_path, monkeypatch, capsys):
    """`rlvr synth --cot grok --data FILE --attempts 2 --backup-url …`: a wrong first solution is asked again, a
    problem Grok keeps getting wrong goes to the OpenAI-compatible backup (its key from the environment), and the
    rows record which model wrote them."""
    import http.server
    import json

    from cluster.cli import main
    from synthesis.datasets import load_problems

    problems = load_problems("synthesis/data/gsm8k_sample.jsonl", limit=3)
    a, b, c = problems
    grok = FlakyCotChat({a.question: [f"The answer is: {a.answer}1", f"Redo.\nThe answer is: {a.answer}"],
                         b.question: [f"The answer is: {b.answer}9"], c.question: [f"So.\nThe answer is: {c.answer}"]})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    chat_pb2_grpc.add_ChatServicer_to_server(grok, server)
    port = server.add_insecure_port("127.0.0.1:0")
    seen: list[tuple[str, dict]] = []

    class Backup(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.headers["Authorization"], body))
            question = body["messages"][-1]["content"]
            answer = next(p.answer for p in problems if p.question == question)
            out = json.dumps({"choices": [{"message": {"content": f"Carefully.\nThe answer is: {answer}"}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args):
            pass

    backup = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Backup)
    threading.Thread(target=backup.serve_forever, daemon=True).start()
    server.start()
    monkeypatch.setenv("XAI_API_KEY", KEY)
    monkeypatch.setenv("BACKUP_API_KEY", "backup-secret")
    out = tmp_path / "cot.jsonl"
    try:
        assert main(["synth", "--cot", "grok", "--data", "synthesis/data/gsm8k_sample.jsonl", "--n", "3",
                     "--attempts", "2", "--backup-url", f"http://127.0.0.1:{backup.server_port}/v1",
                     "--backup-model", "local-model", "--out", str(out), "--api-host", f"127.0.0.1:{port}",
                     "--insecure"]) == 0
    finally:
        server.stop(0)
        backup.shutdown()
    err = capsys.readouterr().err
    assert "kept 3/3 solutions whose final answer matches SymPy's (1 from the backup endpoint) in 6 calls" in err
    rows = {r["question"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert rows[a.question]["model"] == "grok-4" and rows[b.question]["model"] == "local-model"
    assert rows[b.question]["source"] == "backup-cot" and grok.calls == {a.question: 2, b.question: 2, c.question: 1}
    assert [auth for auth, _ in seen] == ["Bearer backup-secret"] and seen[0][1]["model"] == "local-model"

"""The LLM teacher (`teacher.model: grok-4`) against a fake xAI server speaking the SDK's gRPC protocol: replies are
hostile data (a child is kept only when its form parses, is fully worded and derives an answer); prompt optimisation
keeps a better prompt and rejects a worse one; replies are cached so a resumed run replays them."""
from __future__ import annotations

import json
import random
import threading
from concurrent import futures

import grpc
import pytest

pytest.importorskip("xai_sdk")
from xai_sdk.proto import chat_pb2, chat_pb2_grpc  # noqa: E402

from cluster.config import TeacherConfig  # noqa: E402
from cluster.teacher import StrategyReward, optimised_prompts  # noqa: E402
from synthesis.generators import generate_problems  # noqa: E402
from synthesis.grok import ResolverConfig  # noqa: E402
from synthesis.llm_teacher import (GrokTeacher, PromptBook, settle_trials, start_book, start_trial,  # noqa: E402
                                   worst_prompt)
from synthesis.symbolic import realise  # noqa: E402

KEY = "xai-test-secret-key"


def reply(content: str):
    message = chat_pb2.CompletionMessage(role=chat_pb2.MessageRole.ROLE_ASSISTANT, content=content)
    return chat_pb2.GetChatCompletionResponse(id="r", model="grok-4", outputs=[chat_pb2.CompletionOutput(message=message)])


class FakeTeacher(chat_pb2_grpc.ChatServicer):
    """Rewrites by the strategy named in the request: `valid` moves the first quantity to its low end, `inject` puts
    a format-string attack in the words, `unworded` drops a quantity from the words, `junk` is not JSON. Prompt
    improvement requests get `PROMPT: <the next instruction>`. Counts every call."""

    def __init__(self, next_prompt: str = "Add one step that multiplies by a small number.") -> None:
        self.calls, self.next_prompt, self.lock = 0, next_prompt, threading.Lock()

    def GetCompletion(self, request, context):
        with self.lock:
            self.calls += 1
        text = next(m.content[0].text for m in request.messages if m.role == chat_pb2.MessageRole.ROLE_USER)
        if text.startswith("Instruction:") or not text.startswith("Strategy:"):
            return reply(f"PROMPT: {self.next_prompt}")
        strategy, form = text.split("\n", 1)
        form = json.loads(form.removeprefix("Problem: "))
        first = form["quantities"][0]
        first["value"] = first["low"] if first["value"] != first["low"] else first["high"]
        if "inject" in strategy:
            form["text"] = "{a.__class__.__mro__} " + form["text"]
        if "unworded" in strategy:
            form["text"] = "What is it?"
        body = "not json at all" if "junk" in strategy else json.dumps(form)
        return reply(f"Here you go.\nSYMBOLIC: {body}")


@pytest.fixture()
def server():
    servicer = FakeTeacher()
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    chat_pb2_grpc.add_ChatServicer_to_server(servicer, grpc_server)
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    grpc_server.start()
    yield servicer, port
    grpc_server.stop(0)


def teacher(port: int, **kwargs) -> GrokTeacher:
    return GrokTeacher(ResolverConfig(api_host=f"127.0.0.1:{port}", insecure=True, call_timeout=2.0,
                                      backoff_base=0.01, max_retries=1), api_key=KEY, **kwargs)


def test_a_rewrite_is_kept_only_when_its_form_parses_is_worded_and_derives_and_replays_from_the_cache(server, tmp_path):
    from synthesis.llm_teacher import StrategyPrompt

    servicer, port = server
    parent = generate_problems(1, 2, topics={"word_problems": 1}, seed=4)[0]
    prompts = [StrategyPrompt("change_constant", f"{kind}: change one number") for kind in
               ("valid", "inject", "unworded", "junk")]
    cache_path = tmp_path / "replies.jsonl"
    grok = teacher(port, cache_path=cache_path)
    outcomes, _ = grok.run([(parent, p) for p in prompts])
    (valid, why_valid), *refused = outcomes
    assert why_valid == "kept" and valid.source == "teacher" and valid.question != parent.question
    assert valid.question == realise(valid.symbolic) and valid.meta["prompt_version"] == 0
    assert [child for child, _ in refused] == [None, None, None]
    named = sorted({q.name for q in parent.symbolic.quantities})
    assert [why for _, why in refused] == ["the words hold a brace that is not a {name} placeholder",
                                           f"the words do not mention {', '.join(named)}", "no SYMBOLIC line"]
    calls = servicer.calls
    cache = dict(json.loads(line) for line in cache_path.read_text().splitlines())
    again, _ = teacher(port, cache=cache).run([(parent, p) for p in prompts])
    assert servicer.calls == calls, "a resumed run replays its cached replies"
    assert [c.to_dict() if c else None for c, _ in again] == [c.to_dict() if c else None for c, _ in outcomes]


def test_prompt_optimisation_keeps_a_better_prompt_and_rejects_a_worse_one(server):
    """The lowest-scoring prompt is rewritten by the model (OPRO) every `prompt_every` steps; the candidate serves
    alternate children and replaces the active prompt only when its children score higher."""
    _, port = server
    cfg = TeacherConfig(model="grok-4", strategies=("add_step", "change_constant"), prompt_every=2, trial_children=4)
    for candidate_reward, kept in ((0.9, True), (0.2, False)):
        book = start_book(list(cfg.strategies))
        rewards = [StrategyReward("add_step", "easy", 0.5, False, 0.4, 0)] * 4 + \
                  [StrategyReward("change_constant", "easy", 0.5, False, 0.7, 0)] * 4
        book = optimised_prompts(book, cfg, rewards, step=1, llm=teacher(port))
        assert not book.trials, "no rewrite before prompt_every steps"
        book = optimised_prompts(book, cfg, [], step=2, llm=teacher(port))
        assert book.trials["add_step"].text == "Add one step that multiplies by a small number."
        assert book.trials["add_step"].version == 1
        trial = [StrategyReward("add_step", "easy", 0.5, False, candidate_reward, 1)] * 4 + \
                [StrategyReward("add_step", "easy", 0.5, False, 0.4, 0)] * 4
        book = optimised_prompts(book, cfg, trial, step=3, llm=teacher(port))
        assert not book.trials and len(book.retired) == 1
        assert (book.active["add_step"].version == 1) is kept
        assert book.retired[0].version == (0 if kept else 1)


def test_the_book_round_trips_and_the_worst_prompt_is_the_one_rewritten():
    book = start_book(["add_step", "compose"])
    book.active["add_step"].scores = [0.9, 0.8]
    book.active["compose"].scores = [0.1, 0.3]
    assert worst_prompt(book, 2).strategy == "compose" and worst_prompt(book, 3) is None
    trial = start_trial(book, "compose", "Compose with a one-step problem.")
    assert PromptBook.from_dict(json.loads(json.dumps(trial.to_dict()))) == trial
    assert worst_prompt(trial, 2).strategy == "add_step"  # compose is on trial
    assert settle_trials(trial, 1) == trial, "nothing to settle before the candidate has scores"


def test_teacher_children_from_the_llm_never_hold_a_held_out_fact(server):
    from cluster.teacher import observe_teacher, start_teacher, taught_problems
    from synthesis.problem import fact_key

    _, port = server
    cfg = TeacherConfig(model="grok-4", strategies=("change_constant",))
    parents = generate_problems(12, 1, topics={"mental_math": 1}, seed=2, split="train")
    state = observe_teacher(start_teacher(cfg), cfg, 0.5, [(p, [True] * 4) for p in parents])
    children = taught_problems(state, cfg, 0.5, 8, random.Random(0), exclude=set(), llm=teacher(port))
    assert children and all(c.meta["strategy"] == "change_constant" and c.meta["prompt_version"] == 0
                            for c in children)
    held = {fact_key(c) for c in children}
    again = taught_problems(state, cfg, 0.5, 8, random.Random(0), exclude=held, llm=teacher(port))
    assert not held & {fact_key(c) for c in again}


def test_a_revisit_asks_the_parent_again_without_calling_the_llm(server):
    from cluster.teacher import observe_teacher, start_teacher, taught_problems

    servicer, port = server
    cfg = TeacherConfig(model="grok-4", strategies=("revisit",))
    assert "revisit" not in start_teacher(cfg).prompts["active"], "a revisit has no prompt to optimise"
    parents = generate_problems(12, 1, topics={"mental_math": 1}, seed=2, split="train")
    state = observe_teacher(start_teacher(cfg), cfg, 0.5, [(p, [True, False] * 2) for p in parents])
    children = taught_problems(state, cfg, 0.5, 6, random.Random(0), exclude=set(), llm=teacher(port))
    assert len(children) == 6 and servicer.calls == 0
    assert {c.question for c in children} <= {p.question for p in parents}
    assert all(c.meta["strategy"] == "revisit" and c.source == "teacher" for c in children)

    both = TeacherConfig(model="grok-4", strategies=("revisit", "change_constant"))
    state = observe_teacher(start_teacher(both), both, 0.5, [(p, [True, False] * 2) for p in parents])
    children = taught_problems(state, both, 0.5, 8, random.Random(0), exclude=set(), llm=teacher(port))
    by = {s: [c for c in children if c.meta["strategy"] == s] for s in both.strategies}
    assert by["revisit"] and by["change_constant"] and servicer.calls >= len(by["change_constant"])
    assert all(c.question in {p.question for p in parents} and "prompt_version" not in c.meta for c in by["revisit"])
    assert all(c.meta["prompt_version"] == 0 and c.question not in {p.question for p in parents}
               for c in by["change_constant"])

"""Agentic evaluation: the solver–verifier and code-feedback loops on scripted models (real SymPy scoring, real
contained code runs), the SFT turns that teach them, and `rlvr eval --agent` on the tiny model and local Ray."""
import json
import re

import pytest

from cluster.agents import approves, code_feedback, extract_program, solver_verifier
from synthesis.agent_data import (CHECK_PROMPT, CODE_ANSWER_PROMPT, CODE_PROMPT, REVISE_PROMPT, agent_turns,
                                  check_reply, expression_of, program_for)
from synthesis.generators import generate_problems
from synthesis.problem import Problem
from verifier_pool import compare, extract_answer
from verifier_pool.code_runner import run_python


def answer(value: str) -> str:
    return f"<response><reasoning>work</reasoning><final_answer>{value}</final_answer></response>"


def score(problems, texts):
    return [compare(extract_answer(t), p.answer, policy="strict").equal for p, t in zip(problems, texts)]


PROBLEMS = [Problem(id=str(i), question=f"What is {i} + {i}?", answer=str(2 * i)) for i in range(1, 5)]


def test_reading_programs_and_verdicts_from_hostile_text():
    assert extract_program("Here:\n```python\nprint(2 + 3)\n```\nDone") == "print(2 + 3)"
    assert extract_program("```\nprint(1)\n```") == "print(1)"
    assert extract_program("no code at all") is None and extract_program("```python\nprint(1)") is None
    assert extract_program("```python\n\n```") is None
    assert extract_program("x" * 50_000 + "```python\nprint(1)\n```") is None  # past the read bound
    assert approves("CORRECT") and approves("2 + 2 = 4\nCORRECT") and approves("wrong at first, but correct")
    assert not approves("2 + 2 = 4\nWRONG") and not approves("incorrect") and not approves("")
    assert not approves("I cannot tell") and not approves("CORRECT? no, WRONG")
    assert not approves("looks CORRECT, but UNCLEAR") and approves("UNCLEAR at first; CORRECT")


def test_solver_verifier_revises_rejected_answers_and_counts_the_verifiers_judgements():
    """p1: right, approved. p2: wrong, rejected, revised right, approved. p3: wrong, approved (a verifier error the loop
    cannot fix). p4: right, rejected, revised wrong, then rejected again and revised right at iteration 3."""
    first = {"1": "2", "2": "5", "3": "7", "4": "8"}
    revisions = {"2": ["4"], "4": ["9", "8"]}
    checks = {"1": ["2 + 2 = 4\nCORRECT"], "2": ["2 + 2 = 4\nWRONG", "CORRECT"], "3": ["CORRECT"],
              "4": ["look again: UNCLEAR", "no, incorrect"]}

    def pid(prompt: str) -> str:
        return re.search(r"What is (\d)", prompt).group(1)

    def generate(prompts):
        out = []
        for prompt in prompts:
            i = pid(prompt)
            out.append(answer(first[i] if "Critique:" not in prompt else revisions[i].pop(0)))
        return out

    def check(prompts):
        assert all(p.endswith("Check it step by step, then say CORRECT or WRONG.") for p in prompts)
        return [checks[pid(p)].pop(0) for p in prompts]

    report = solver_verifier(PROBLEMS, [p.question for p in PROBLEMS], generate, check, score, max_iterations=3)
    assert [r["accuracy"] for r in report["iterations"]] == [0.5, 0.5, 0.75]
    assert report["verifier"] == {"approved_right": 2, "approved_wrong": 1, "rejected_right": 1, "rejected_wrong": 2}
    verdicts = {k: v for k, v in report["verdicts"].items() if v}  # only CORRECT accepts: UNCLEAR is revised too
    assert verdicts == {"CORRECT_right": 2, "CORRECT_wrong": 1, "WRONG_wrong": 2, "UNCLEAR_right": 1}
    assert revisions == {"2": [], "4": []} and all(not v for v in checks.values())


def test_code_feedback_runs_programs_contained_and_answers_from_their_output():
    """Real contained runs: a right program, a hanging one (timed out, then fixed), a missing one, and one that
    tries `os.system` (refused: an error shown to the model). The scripted model answers what the output says."""
    programs = {"1": ["print(1 + 1)"], "2": ["while True: pass", "print(2 * 2)"], "3": [None, None],
                "4": ["import os\nos.system('echo pwned')", "print(8)"]}
    seen_feedback = []

    def generate(prompts):
        out = []
        for prompt in prompts:
            i = re.search(r"What is (\d)", prompt).group(1)
            if prompt.endswith("Give the final answer."):
                seen_feedback.append(prompt.splitlines()[-2])
                match = re.search(r"Output: (\S+)", prompt)
                out.append(answer(match.group(1)) if match else "I do not know")
            else:
                program = programs[i].pop(0)
                out.append(f"```python\n{program}\n```" if program else "Let me think.")
        return out

    report = code_feedback(PROBLEMS, generate, lambda p: run_python(p, timeout=2.0), score, max_iterations=2)
    assert [r["accuracy"] for r in report["iterations"]] == [0.25, 0.75]
    assert report["programs"] == {"ok": 3, "error": 1, "timeout": 1, "killed": 0, "no_code": 2}
    assert "Error: the program ran out of time" in seen_feedback and "Error: no program found" in seen_feedback
    assert any("not allowed" in f for f in seen_feedback) and not any("pwned" in f for f in seen_feedback)


def test_agent_turns_teach_programs_that_print_the_answer_and_critiques_of_wrong_solutions():
    problems = [p for level in (1, 2, 3) for p in generate_problems(4, level, topics={"arithmetic": 1.0}, seed=5)]
    rows = agent_turns(problems, seed=0)
    assert {r["kind"] for r in rows} == {"code", "code_answer", "code_retry", "check", "revise"}
    with_division = [p for p in problems if "/" in expression_of(p)]
    assert with_division, "the sample should include an exact division"
    for problem in problems[:6] + with_division[:2]:
        result = run_python(program_for(expression_of(problem)))
        assert (result.status, result.stdout.strip()) == ("ok", problem.answer), problem.question
    for problem in problems:
        prompts = {r["prompt"]: r for r in rows if problem.question in r["prompt"]}
        code = prompts[CODE_PROMPT.format(question=problem.question)]
        assert code["target"] == f"```python\n{program_for(expression_of(problem))}\n```"
        checks = [r for r in prompts.values() if r["kind"] == "check"]
        right = next(r for r in checks if approves(r["target"]))
        wrong = next(r for r in checks if not approves(r["target"]))
        working = re.search(r"<reasoning>(.*?)</reasoning>", problem.solution, re.S).group(1).replace("\n", "; ")
        assert right["target"].startswith(f"{working}\nThe solution says {problem.answer}; I get {problem.answer}. ")
        assert right["target"].endswith(" same. CORRECT") and "differ" not in right["target"]
        proposed = re.search(r"The solution says (.*); I get", wrong["target"]).group(1)
        assert wrong["target"].startswith(f"{working}\nThe solution says {proposed}; I get {problem.answer}. ")
        assert wrong["target"].endswith(". WRONG") and " differ" in wrong["target"]
        assert proposed != problem.answer and f"<final_answer>{proposed}</final_answer>" in wrong["prompt"]
        assert right["prompt"] == CHECK_PROMPT.format(question=problem.question, solution=problem.solution)
        shown_wrong = wrong["prompt"].split("Proposed solution:\n")[1].rsplit(CHECK_PROMPT.split("{solution}")[1], 1)[0]
        assert not compare(extract_answer(shown_wrong), problem.answer).equal
        revise = next(r for r in prompts.values() if r["kind"] == "revise")
        assert revise["target"] == problem.solution and revise["prompt"].startswith(
            REVISE_PROMPT.split("{solution}")[0].format(question=problem.question))
        answer_row = next(r for r in prompts.values() if r["kind"] == "code_answer")
        assert answer_row["prompt"] == CODE_ANSWER_PROMPT.format(question=problem.question,
                                                                 program=program_for(expression_of(problem)),
                                                                 feedback=f"Output: {problem.answer}")
        assert compare(extract_answer(answer_row["target"]), problem.answer, policy="strict").equal


@pytest.mark.ray
@pytest.mark.parametrize("agent", ["solver-verifier", "code-feedback"])
def test_rlvr_eval_agent_reports_accuracy_per_iteration(ray_cluster, tiny_model_dir, tmp_path, capsys, agent):
    from cluster.cli import main

    data = tmp_path / "problems.jsonl"
    data.write_text("\n".join(json.dumps(p.to_dict()) for p in generate_problems(3, 1, topics={"arithmetic": 1.0})))
    out = tmp_path / "agent.json"
    assert main(["eval", "--model", tiny_model_dir, "--data", str(data), "--agent", agent, "--max-iterations", "2",
                 "--max-tokens", "8", "--temperature", "0", "--code-timeout", "3", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["agent"] == agent and report["problems"] == 3
    # The tiny model, greedy, in 8 tokens: no right answer, never the (untrained) word CORRECT, never a whole fenced
    # program. So every solution is checked once and rejected, and every problem is asked for a program twice.
    assert report["iterations"] == [{"iteration": 1, "accuracy": 0.0, "ci": [0.0, 0.0], "per_problem": [0.0] * 3},
                                    {"iteration": 2, "accuracy": 0.0, "ci": [0.0, 0.0], "per_problem": [0.0] * 3}]
    if agent == "solver-verifier":
        assert report["verifier"] == {"approved_right": 0, "approved_wrong": 0, "rejected_right": 0, "rejected_wrong": 3}
    else:
        assert report["programs"] == {"ok": 0, "error": 0, "timeout": 0, "killed": 0, "no_code": 6}
    printed = capsys.readouterr().out
    assert printed.startswith(f"{agent} on 3 problems") and "iteration" in printed


def test_a_check_reply_compares_the_two_results_character_by_character():
    assert check_reply("18 + 12 = 30", "30", "30") == (
        "18 + 12 = 30\nThe solution says 30; I get 30. 3 3 same, 0 0 same. CORRECT")
    assert check_reply("18 + 12 = 30", "31", "30").endswith("3 3 same, 1 0 differ. WRONG")
    assert check_reply("5 * 20 = 100", "10", "100").endswith("1 1 same, 0 0 same, none 0 differ. WRONG")
    assert approves(check_reply("w", "7", "7")) and not approves(check_reply("w", "-7", "7"))


def test_tiny_prose_pretraining_covers_every_token_the_agent_turns_write(tmp_path):
    """The agents' targets are text the model must emit. `tiny` pretrains on math text alone, so some of their
    tokens (the verdict words) never occur in it and their tied output embeddings learn never to be emitted;
    `tiny-prose` adds word-salad prose in which every one of them occurs."""
    from cluster.modelzoo import build_tokenizer, pretraining_problems, pretraining_text, prose_corpus, tiny_model_path

    tok = build_tokenizer(tmp_path / "tok")
    problems = generate_problems(60, 2, topics={"mental_math": 1.0}, seed=3, split="train")
    targets = {t["target"] for t in agent_turns(problems, seed=0)}
    needed = {i for text in targets for i in tok(text).input_ids}
    math = {t for i, p in enumerate(pretraining_problems()) for t in tok(pretraining_text(p, markup=i % 2 == 1)).input_ids}
    prose = {i for line in prose_corpus() for i in tok(line).input_ids}
    missing_from_math = {tok.convert_ids_to_tokens(i) for i in needed - math}
    assert {"C", "O", "R", "E", "N", "G"} <= missing_from_math  # CORRECT / WRONG
    assert not needed - math - prose
    with pytest.raises(ValueError, match="tiny-prose"):
        tiny_model_path(name="tiny-english")

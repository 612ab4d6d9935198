"""SFT data from files (`sft.data`): the row shapes, hostile rows, and the driver's verification before training."""
import json

import pytest

from synthesis.sft_data import MAX_ROW_CHARS, cot_target, load_sft_rows, sft_row
from verifier_pool import compare, extract_answer


def test_each_row_shape_becomes_a_target_in_the_rollout_answer_format():
    ours = sft_row({"question": "What is 2 + 3?", "solution": "2 + 3 = 5\nThe answer is 5.", "answer": "5"})
    metamath = sft_row({"query": "Tom has 3 apples and buys 4. How many?", "type": "GSM_AnsAug",
                        "response": "He has 3 + 4 = 7 apples.\nThe answer is: 7"})
    gsm8k = sft_row({"question": "Half of 48?", "answer": "Half is 48/2=<<48/2=24>>24.\n#### 24"})
    turn = sft_row({"prompt": "Write Python that prints 2 + 3.", "target": "```python\nprint(2 + 3)\n```",
                    "kind": "code"})
    assert (ours.kind, ours.answer, ours.turn) == ("cot", "5", False)
    assert ours.target == cot_target("2 + 3 = 5", "5") == \
        "<response><reasoning>2 + 3 = 5</reasoning><final_answer>5</final_answer></response>"
    assert (metamath.kind, metamath.answer) == ("metamath", "7")
    assert metamath.target == cot_target("He has 3 + 4 = 7 apples.", "7")
    assert (gsm8k.kind, gsm8k.answer) == ("gsm8k", "24") and "<<" not in gsm8k.target and "####" not in gsm8k.target
    assert turn.turn and turn.kind == "code" and turn.target.startswith("```python") and turn.answer == ""
    for row in (ours, metamath, gsm8k):  # the target scores as correct against the row's answer
        assert compare(extract_answer(row.target), row.answer, policy="strict").equal


def test_unreadable_rows_are_skipped_and_counted(tmp_path):
    path = tmp_path / "data.jsonl"
    lines = [json.dumps({"question": "What is 1 + 1?", "solution": "1 + 1 = 2", "answer": "2"}),
             "{not json", json.dumps(["a", "list"]), json.dumps({"query": "no answer line", "response": "I think 3"}),
             json.dumps({"question": "x" * (MAX_ROW_CHARS + 1), "solution": "s", "answer": "1"}),
             json.dumps({"unknown": "shape"}), ""]
    path.write_text("\n".join(lines))
    rows, skipped = load_sft_rows(str(path))
    assert [r.answer for r in rows] == ["2"] and skipped == 5


@pytest.mark.ray
def test_training_on_a_file_drops_rows_whose_answer_the_verifier_rejects(ray_cluster, tiny_model_dir, tmp_path):
    """`sft.data`: CoT rows whose solution ends in another answer, or an unparsable one, and held-out facts are
    dropped and counted before training; agent turns are kept as given; the warm start trains on the rest."""
    import mlflow

    from cluster.data import held_out_problems
    from cluster.loop import train
    from tests.test_loop import tiny_config

    cfg = tiny_config(tmp_path, tiny_model_dir, "probe")
    heldout = held_out_problems(cfg)["one"][0]
    rows = [{"question": "What is 2 + 3?", "solution": "2 + 3 = 5\nThe answer is 5.", "answer": "5"},
            {"question": "What is 4 * 4?", "solution": "<response><reasoning>4 * 4 = 16</reasoning>"
                                                       "<final_answer>16</final_answer></response>", "answer": "16"},
            {"query": "What is 9 - 2?", "response": "9 - 2 = 7\nThe answer is: 7"},
            {"question": "What is 6 + 6?", "solution": "6 + 6 = 13\nThe answer is 13.", "answer": "12"},
            {"question": "What is 1 + 1?", "solution": "I cannot say.", "answer": "2"},
            {"question": heldout.question, "solution": heldout.solution, "answer": heldout.answer,
             "topic": heldout.topic, "meta": heldout.meta},
            {"prompt": "Check: 2 + 3 = 5", "target": "CORRECT", "kind": "check"}]
    data = tmp_path / "cot.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows))
    lines: list[str] = []
    out = train(tiny_config(tmp_path, tiny_model_dir, "cot", f"sft.data={data}",
                            "stages=[{name: one, difficulty: 1, topics: {mental_math: 1}, epochs: 1, problems: 4}]"),
                echo=lines.append)
    assert out["finished"]
    summary = next(line for line in lines if line.startswith(f"[sft] {data}"))
    assert "cot_kept 3" in summary and "turns 1" in summary and "heldout 1" in summary, summary
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    metrics = client.get_run(out["run_id"]).data.metrics
    assert metrics["sft/data_cot_kept"] == 3 and metrics["sft/data_heldout"] == 1
    # 6 + 6 = 13 ends in another answer (`wrong`); "I cannot say." has none (`unparsable`)
    assert metrics["sft/data_dropped_wrong"] == 1 and metrics["sft/data_dropped_unparsable"] == 1
    assert "dropped_unparsable 1" in summary and "dropped_wrong 1" in summary, summary

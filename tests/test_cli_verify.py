import io
import json
import subprocess
import sys

from cluster.cli import verify_file


def test_verify_file_handles_pred_completion_and_bad_lines():
    src = io.StringIO("\n".join([
        json.dumps({"gold": "1/2", "pred": "0.5"}),
        json.dumps({"gold": "3", "completion": r"so \boxed{4}"}),
        "not json",
        json.dumps({"pred": "1"}),
        json.dumps({"gold": "1", "pred": r"9^{9^{9^9}}"}),
    ]))
    dst = io.StringIO()
    lines, equal = verify_file(src, dst, timeout=2.0)
    out = [json.loads(line) for line in dst.getvalue().splitlines()]
    assert (lines, equal) == (5, 1)
    assert out[0]["equal"] is True and out[0]["verdict"] == "correct"
    assert out[1]["extracted"] == "4" and out[1]["verdict"] == "wrong"
    assert "error" in out[2] and "error" in out[3]
    assert out[4]["equal"] is False and out[4]["verdict"] == "unparsable" and out[4]["reason"] == "exponent too large"


def test_rlvr_verify_command(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"gold": r"\frac{3}{4}", "pred": "0.75"}) + "\n")
    result = subprocess.run([sys.executable, "-m", "cluster.cli", "verify", str(path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["equal"] is True

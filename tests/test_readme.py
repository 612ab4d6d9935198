"""The README is a manual that cannot drift: its configuration table is the generated one, CI finds its test
command, its links resolve, its module map names the modules that exist, and the bench scripts keep the hand-written
reading of `bench/results/*.md` when they rewrite the measured block."""
from __future__ import annotations

import dataclasses
import importlib.util
import pathlib
import re
import shutil
import subprocess

import pytest

from cluster.config_table import END, NOTES, START, config_table, read_block, replace_block, stale_notes

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CI_SED = r"s/^ *\$ *\(python -m pytest.*\)$/\1/p"  # exactly what .ci/run runs
TRAIN = "pip install torch==2.13.0 && pip install -e . && rlvr train"
WRITERS = ("tiny_default", "curriculum", "raft", "agents", "faults")  # results the bench scripts rewrite


def readme() -> str:
    return README.read_text()


def test_config_table_is_the_generated_one():
    text = readme()
    assert text.count(START) == 1 and text.count(END) == 1
    assert read_block(text) == config_table(), (
        "README's configuration table is stale (a default, field or comment changed): "
        "run python -m cluster.config_table --write README.md")


def test_config_table_walks_every_section_and_explains_every_key():
    from cluster.config import TrainConfig

    table = config_table()
    rows = table.splitlines()[2:]
    for line in rows:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        assert len(cells) == 4, line
        assert cells[3], f"no meaning for {cells[0]}: add a trailing # comment to the field or a NOTES entry"
    keys = {re.match(r"\| `([^`]+)`", line).group(1) for line in rows if line.startswith("| `")}
    for name in ("learner", "model", "rollout", "verifier", "sft", "curriculum", "watchdog", "raft"):
        for f in dataclasses.fields(getattr(TrainConfig(), name)):
            assert f"{name}.{f.name}" in keys
    assert "stages" not in keys and "prompt" in keys
    assert "| `rollout.torch_threads` | `1` |" in table  # the README once said 0
    assert stale_notes() == [], f"NOTES entries for fields that no longer exist: {stale_notes()}"
    assert set(NOTES) - keys == set()


def test_replace_block_keeps_the_rest():
    text = f"before\n{START}\nold\n{END}\nafter\n"
    assert replace_block(text, "new") == f"before\n{START}\nnew\n{END}\nafter\n"
    assert read_block(replace_block(text, "a\nb")) == "a\nb"


@pytest.mark.skipif(shutil.which("sed") is None, reason="needs sed, as .ci/run does")
def test_ci_finds_the_test_command():
    assert CI_SED.replace("\\", "") in (ROOT / ".ci/run").read_text().replace("\\", "")
    out = subprocess.run(["sed", "-n", CI_SED, str(README)], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[0] == "python -m pytest -q tests"


def test_quick_start_installs_cpu_torch_first_then_trains():
    lines = [line.strip() for line in readme().splitlines()]
    assert f"$ {TRAIN}" in lines
    pin = re.search(r"pip install -q (torch==\S+)", (ROOT / ".ci/run").read_text()).group(1)
    assert f"pip install {pin}" in TRAIN
    quick = readme().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert TRAIN in quick and "$ python -m pytest -q tests" in quick
    assert "http://127.0.0.1:8265" in quick and "mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db" in quick
    assert len(quick.strip().splitlines()) <= 40, "the quick start is one screen"


def test_mlflow_default_matches_the_tracking_code(monkeypatch):
    from cluster.tracking import default_tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = default_tracking_uri()
    assert uri.startswith("sqlite:///") and uri.endswith("/mlruns/mlflow.db")


def test_links_resolve_and_every_result_is_linked():
    text = readme()
    targets = re.findall(r"\]\(([^)#\s]+)\)", text)
    for target in targets:
        if "://" not in target:
            assert (ROOT / target).exists(), f"README links to missing {target}"
    linked = {t for t in targets if t.startswith("bench/results/")}
    for md in sorted((ROOT / "bench/results").glob("*.md")):
        assert f"bench/results/{md.name}" in linked, f"bench/results/{md.name} is not linked from the README"
    for target in (t for t in re.findall(r"\]\(([^)\s]+)\)", (ROOT / "bench/results/agents.md").read_text())):
        assert (ROOT / "bench/results" / target).exists()


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def test_anchors_resolve():
    text = readme()
    slugs = {_slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}
    for anchor in re.findall(r"\]\(#([^)]+)\)", text):
        assert anchor in slugs, f"README links to #{anchor}, no such heading"


def test_module_map_names_the_modules_that_exist():
    text = readme().split("Module map:", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `([a-z_]+/[a-z_]+\.py)` \|", text, flags=re.M))
    present = {str(p.relative_to(ROOT)) for folder in ("cluster", "actors", "learner", "verifier_pool", "synthesis")
               for p in (ROOT / folder).glob("*.py") if p.name != "__init__.py"}
    assert listed - present == set(), f"the README's module map lists modules that do not exist: {sorted(listed - present)}"
    assert present - listed == set(), f"modules missing from the README's module map: {sorted(present - listed)}"


def test_architecture_and_glossary_cover_the_words_the_manual_uses():
    text = readme()
    arch = text.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    for word in ("RolloutFleet", "rollout-<i>", "verifier-<i>", "learner", "RewardBreakdown", "Verdict", "LearnStats",
                 "AdapterWeights", "StepResult", "msgpack", "ObjectRef", "MLflow", "GroupBatch", "Episode"):
        assert word in arch, word
    glossary = text.split("## Glossary", 1)[1].split("\n## ", 1)[0]
    for term in ("zero-spread group", "strict / lenient", "not_final", "unparsable", "timeout", "error", "stage",
                 "preset", "episode", "environment", "adapter version", "staleness"):
        assert term in glossary, term


def _bench_module():
    spec = importlib.util.spec_from_file_location("tiny_default", ROOT / "bench" / "tiny_default.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_results_keep_their_reading_across_a_rerun(tmp_path):
    write = _bench_module().write_results_md
    start, end = "<!-- generated:start -->", "<!-- generated:end -->"
    for name in WRITERS:
        source = (ROOT / "bench/results" / f"{name}.md").read_text()
        assert source.count(start) == 1 and source.count(end) == 1, name
        generated = source.split(start + "\n", 1)[1].split("\n" + end, 1)[0]
        copy = tmp_path / f"{name}.md"
        copy.write_text(source)
        write(copy, generated + "\n", "title")
        assert copy.read_text() == source, f"{name}.md: rewriting the same figures changed the file"
        write(copy, "| new | table |", "title")
        after = copy.read_text()
        assert "| new | table |" in after and generated not in after
        assert after.split(end, 1)[1] == source.split(end, 1)[1], f"{name}.md: the reading after the block was lost"
        assert after.split(start, 1)[0] == source.split(start, 1)[0]
    fresh = tmp_path / "fresh.md"
    write(fresh, "T", "A title")
    assert fresh.read_text() == f"# A title\n\n{start}\nT\n{end}\n"
    unmarked = tmp_path / "unmarked.md"
    unmarked.write_text("hand-written\n")
    write(unmarked, "T", "A title")
    assert "hand-written" in unmarked.read_text()


def test_readme_keeps_one_headline_per_result_and_no_dated_tables():
    text = readme()
    for name in WRITERS:
        assert f"<!-- {name}:start -->" not in text, f"the {name} table moved to bench/results/{name}.md"
    measurements = text.split("## Measurements", 1)[1].split("\n## ", 1)[0]
    for md in sorted((ROOT / "bench/results").glob("*.md")):
        assert measurements.count(f"(bench/results/{md.name})") == 1, md.name

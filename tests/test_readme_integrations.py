"""The README's framework table is a promise: the glue it shows for each framework is what its
runnable example calls, and that example is run against a live server by the test suite."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
SECTION = README.split("## From the agent framework you already use", 1)[1].split("\n## ", 1)[0]
# | Framework | Its approval step | `glue` | [file](path), … |
ROW = re.compile(r"^\| ([^|]+) \| [^|]+ \| `([^`]+)` \| (.+) \|$", re.M)
# The calls the glue makes to the client and the frameworks (not the framework's own runner).
CALL = re.compile(r"([A-Za-z_][\w.]*)\(")
FRAMEWORK_CALLS = {"Command", "Runner.run_sync", "ClaudeAgentOptions", "Webhook"}
ROWS = ROW.findall(SECTION)


def test_the_table_lists_every_framework_the_issue_names():
    names = {name.strip() for name, _, _ in ROWS}
    assert {"LangChain 1.x", "LangGraph", "OpenAI Agents SDK", "Pydantic AI"} <= names
    assert any("MCP" in name for name in names) and any("Claude" in name for name in names)


@pytest.mark.parametrize("name,glue,links", ROWS, ids=[r[0] for r in ROWS])
def test_each_framework_s_glue_is_what_its_example_calls(name, glue, links):
    files = [ROOT / path.partition("#")[0] for path in re.findall(r"\]\(([^)]+)\)", links)]
    source = "\n".join(f.read_text() for f in files)
    calls = [c for c in CALL.findall(glue) if c not in FRAMEWORK_CALLS]
    flags = re.findall(r"--[\w-]+ \S+", glue)
    assert calls or flags
    for call in calls:
        assert f"{call.rpartition('.')[2]}(" in source, f"{name}: {call} is not in {links}"
    for flag in flags:
        assert flag in source, f"{name}: {flag} is not in {links}"


def test_each_runnable_example_in_the_table_is_run_by_the_suite():
    examples = set(re.findall(r"\(examples/(\w+\.py)\)", SECTION))
    assert len(examples) >= 6
    runs = (ROOT / "tests" / "test_examples.py").read_text()
    assert [e for e in sorted(examples) if e.removesuffix(".py") not in runs] == []

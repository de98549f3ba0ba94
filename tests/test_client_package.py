"""The client package stays dependency-light: installed on its own it imports with the
standard library alone, and each framework adapter's imports come from its own extra."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "hitl_client"
PROJECT = tomllib.loads((PACKAGE / "pyproject.toml").read_text())["project"]
EXTRAS = PROJECT["optional-dependencies"]
# Each adapter module and the extra that installs what it imports.
ADAPTERS = {
    "langchain": "langchain",
    "openai_agents": "openai-agents",
    "pydantic_ai": "pydantic-ai",
    "claude": "claude",
}


def third_party_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.partition(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != "hitl_client"}


# Modules of the core client, standard library only: the agent client and the reviewer's.
CORE = ("__init__", "reviewer")


def test_the_core_client_needs_nothing_outside_the_standard_library():
    assert PROJECT["dependencies"] == []
    for module in CORE:
        assert third_party_imports(PACKAGE / f"{module}.py") == set(), module


def test_every_adapter_module_has_an_extra():
    modules = {p.stem for p in PACKAGE.glob("*.py")} - set(CORE)
    assert modules == set(ADAPTERS)
    assert set(EXTRAS) == set(ADAPTERS.values())


@pytest.mark.parametrize("module,extra", ADAPTERS.items())
def test_each_adapter_imports_only_what_its_extra_installs(module, extra):
    installs = {re.match(r"[\w.-]+", r).group().lower() for r in EXTRAS[extra]}
    providers = packages_distributions()
    imported = third_party_imports(PACKAGE / f"{module}.py")
    assert imported
    missing = {
        name for name in imported if not {d.lower() for d in providers.get(name, [])} & installs
    }
    assert missing == set()


def test_the_client_imports_without_any_installed_package():
    """`python -S`: no site-packages at all, only the standard library and the package."""
    probe = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); import hitl_client; "
        "assert not [p for p in sys.path if 'site-packages' in p]; "
        "print(hitl_client.Client.__name__, hitl_client.AsyncClient.__name__)"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["Client", "AsyncClient"]

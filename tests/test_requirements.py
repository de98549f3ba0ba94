"""requirements.txt is all production installs: the code the Procfile's processes run imports
nothing that only requirements-dev.txt (tests, tooling, `make run`'s honcho) brings in."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import distribution, entry_points, packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION_CODE = ("hitl", "reviews")


def pinned(name: str) -> list[Requirement]:
    lines = (ROOT / name).read_text().splitlines()
    return [Requirement(line.split("#")[0]) for line in lines if re.match(r"^[A-Za-z]", line)]


def installed_by(requirements: list[Requirement]) -> set[str]:
    """The distributions these requirements install, with everything they require in turn."""
    found: set[str] = set()
    todo = [(req, frozenset(req.extras)) for req in requirements]
    while todo:
        req, extras = todo.pop()
        name = canonicalize_name(req.name)
        if name in found and not extras:
            continue
        found.add(name)
        for line in distribution(name).requires or []:
            child = Requirement(line)
            wanted = not child.marker or any(
                child.marker.evaluate({"extra": extra}) for extra in {"", *extras}
            )
            if wanted:
                todo.append((child, frozenset(child.extras)))
    return found


def imported_modules(folder: Path) -> set[str]:
    modules = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules


def test_development_requirements_include_production_and_pin_every_package():
    dev = (ROOT / "requirements-dev.txt").read_text().splitlines()
    assert "-r requirements.txt" in dev
    for requirement in pinned("requirements.txt") + pinned("requirements-dev.txt"):
        assert str(requirement.specifier).startswith("=="), requirement


def test_production_code_imports_only_what_requirements_txt_installs():
    production = installed_by(pinned("requirements.txt"))
    assert "pytest" not in production and "honcho" not in production
    owners = packages_distributions()
    third_party = {
        module
        for folder in PRODUCTION_CODE
        for module in imported_modules(ROOT / folder)
        if module not in sys.stdlib_module_names and module not in PRODUCTION_CODE
    }
    assert {"django", "celery", "redis"} <= third_party
    missing = {
        module: owners.get(module)
        for module in third_party
        if not {canonicalize_name(d) for d in owners.get(module, [])} & production
    }
    assert missing == {}


def test_the_procfile_commands_come_from_production_requirements():
    production = installed_by(pinned("requirements.txt"))
    scripts = {script.name: script.dist.name for script in entry_points(group="console_scripts")}
    procfile = (ROOT / "Procfile").read_text().splitlines()
    commands = {line.split(": ", 1)[1].split()[0] for line in procfile if ": " in line}
    assert commands == {"python", "gunicorn", "celery"}
    assert {canonicalize_name(scripts[c]) for c in commands - {"python"}} <= production

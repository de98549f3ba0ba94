"""The structure the code is meant to keep: no import cycles among the project's modules, no
import hidden inside a function without a comment saying why, and the task names the
services queue by are tasks the worker knows."""

from __future__ import annotations

import ast
from pathlib import Path

import reviews.tasks  # noqa: F401  (registers the tasks, as the worker's autodiscovery does)
from hitl.celery import app
from reviews.services import audit, outbox

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("hitl", "reviews")


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def imported(module: str, path: Path, node: ast.ImportFrom, modules: dict[str, Path]) -> set[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    if node.level:
        base = package.split(".")[: len(package.split(".")) - node.level + 1]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    found = set()
    for alias in node.names:
        candidate = f"{source}.{alias.name}"
        found.add(candidate if candidate in modules else source)
    return {name for name in found if name in modules and name != module}


def import_graph() -> tuple[dict[str, set[str]], list[str]]:
    """Every import, at the top or inside a function (a cycle hidden in a function is still
    a cycle), and the inner ones that carry no comment."""
    modules = project_modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    unexplained = []
    for name, path in modules.items():
        source = path.read_text()
        tree = ast.parse(source)
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                graph[name] |= imported(name, path, node, modules)
            elif isinstance(node, ast.Import):
                graph[name] |= {a.name for a in node.names if a.name in modules} - {name}
            else:
                continue
            line = source.splitlines()[node.lineno - 1]
            if id(node) not in top and "#" not in line:
                unexplained.append(f"{path.relative_to(ROOT)}:{node.lineno}: {line.strip()}")
    return graph, unexplained


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_it_has_no_import_cycle():
    graph, _ = import_graph()
    assert graph["reviews.services.decisions"], "the graph must see the services' imports"
    assert cycles(graph) == []


def test_it_finds_a_cycle_when_there_is_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_an_import_inside_a_function_says_why():
    _, unexplained = import_graph()
    assert unexplained == []


def test_the_services_never_import_the_tasks():
    graph, _ = import_graph()
    services = [name for name in graph if name.startswith("reviews.services")]
    assert services
    assert all("reviews.tasks" not in graph[name] for name in services)


def test_the_tasks_the_outbox_queues_by_name_are_the_workers_tasks():
    for name in (outbox.DELIVER_WEBHOOK, outbox.DELIVER_WEBHOOKS, outbox.SEND_NOTIFICATION):
        assert name in app.tasks, name


def verbs_written() -> set[str]:
    """The audit verbs the code writes: a literal, each side of a conditional, or the fixed
    start of an f-string (`decided.` of `decided.{outcome}`)."""
    found: set[str] = set()

    def literal(node: ast.expr) -> None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.add(node.value)
        elif isinstance(node, ast.IfExp):
            literal(node.body)
            literal(node.orelse)
        elif isinstance(node, ast.JoinedStr) and isinstance(node.values[0], ast.Constant):
            found.add(node.values[0].value)
        elif isinstance(node, ast.BinOp) and isinstance(node.left, ast.Constant):
            found.add(node.left.value)

    for path in project_modules().values():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name in ("audit", "audit_event") and node.args:
                literal(node.args[0])
            if name == "_move" and len(node.args) > 1:  # reassigned, escalated
                literal(node.args[1])
            if name == "record_admin_write" and node.args:
                found.add("admin.")
    return found


def test_every_audit_verb_written_is_listed_in_the_audit_module():
    listed = audit.__doc__ or ""
    verbs = verbs_written()
    assert {"submitted", "decided.", "reassigned", "admin."} <= verbs
    assert sorted(v for v in verbs if v.rstrip(".") not in listed) == []

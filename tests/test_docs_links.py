"""The README is a landing page that sends people to docs/: every link it and the pages make
to a file of this repository, or to a heading of one, must lead somewhere, and every test they
cite as evidence must exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)|<img [^>]*src=\"([^\"]+)\"")
CODE_BLOCK = re.compile(r"^```.*?^```", re.S | re.M)


def anchors(page: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens."""
    text = CODE_BLOCK.sub("", page.read_text())
    headings = re.findall(r"^#+ (.+)$", text, re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def relative_links(page: Path) -> list[str]:
    text = CODE_BLOCK.sub("", page.read_text())
    targets = [a or b for a, b in LINK.findall(text)]
    return [t for t in targets if not re.match(r"[a-z]+:", t)]


def test_there_are_pages_and_links_to_check():
    assert len(PAGES) > 5
    assert len(relative_links(ROOT / "README.md")) > 10


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(page):
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no such heading")
    assert broken == []


# A test file, then the tests named after it: "tests/test_x.py::test_a", "`::test_b`", or a
# list "(`test_c`, `test_d`)" that follows the file it belongs to.
CITATION = re.compile(r"tests/(test_\w+\.py)|`(?:::)?(test_\w+)`|::(test_\w+)")


def cited_tests(page: Path) -> list[tuple[str, str | None]]:
    """(file, test or None) for each citation, in the order the page makes them."""
    cited, current = [], None
    for file, quoted, joined in CITATION.findall(page.read_text()):
        if file:
            current = file
            cited.append((file, None))
        elif current is not None:
            cited.append((current, quoted or joined))
    return cited


def test_docs_cite_tests_as_evidence():
    assert sum(len(cited_tests(page)) for page in PAGES) > 40


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_cited_test_exists(page):
    missing = []
    for file, test in cited_tests(page):
        path = ROOT / "tests" / file
        if not path.exists():
            missing.append(f"tests/{file}")
        elif test and not re.search(rf"^\s*def {test}\(", path.read_text(), re.M):
            missing.append(f"tests/{file}::{test}")
    assert missing == []


def module_tree() -> str:
    """The code block under "The modules" in docs/architecture.md."""
    page = (ROOT / "docs" / "architecture.md").read_text()
    section = page.split("## The modules", 1)[1]
    return section.split("```", 2)[1]


def test_the_architecture_names_modules_that_exist():
    tree = module_tree()
    files = {
        path.name
        for path in ROOT.glob("*/**/*.py")
        if not {".venv", "node_modules"} & set(path.parts)
    }
    folders = {
        path.name for path in ROOT.glob("*/**/") if not {".venv", "node_modules"} & set(path.parts)
    }
    named = re.findall(r"\b(\w+\.py)\b", tree)
    assert len(named) > 30
    assert sorted({n for n in named if n not in files}) == []
    assert sorted({d for d in re.findall(r"\b(\w+)/", tree) if d not in folders}) == []


def test_the_architecture_names_every_service_module():
    tree = module_tree()
    services = sorted(p.name for p in (ROOT / "reviews" / "services").glob("*.py"))
    assert [name for name in services if name != "__init__.py" and name not in tree] == []

"""Settings come from the environment and refuse unsafe or malformed values at start."""

import ast
import contextlib
import os
import re
import subprocess
import sys
from pathlib import Path

from django.conf import settings


def start_django(code: str = "print('started')", **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG"}}
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + code],
        env={**clean, "DJANGO_SETTINGS_MODULE": "hitl.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_it_refuses_to_start_without_a_secret_key_when_debug_is_off():
    result = start_django(DEBUG="false")
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_it_starts_with_a_secret_key():
    assert start_django(DEBUG="false", SECRET_KEY="s3cret").stdout.strip() == "started"


def test_a_secret_can_be_read_from_the_file_named_by_its_file_variable(tmp_path):
    secret = tmp_path / "secret_key"
    secret.write_text("s3cret-from-a-file\n")
    started = start_django(DEBUG="false", SECRET_KEY_FILE=str(secret))
    assert started.stdout.strip() == "started", started.stderr


def test_development_mode_needs_no_secret():
    assert start_django(DEBUG="true").stdout.strip() == "started"


def test_a_malformed_boolean_is_a_clear_error():
    result = start_django(DEBUG="maybe")
    assert "DEBUG must be a boolean" in result.stderr


def test_a_production_process_hashes_passwords_with_pbkdf2():
    # The suite swaps in a fast hasher (conftest.py); the settings themselves must not.
    result = start_django(
        "from django.contrib.auth.hashers import check_password, make_password\n"
        "hashed = make_password('pw-ada')\n"
        "print(hashed.split('$')[0], check_password('pw-ada', hashed))\n"
        "print(check_password('pw-bob', hashed))",
        DEBUG="false",
        SECRET_KEY="s3cret",
    )
    assert result.stdout.split() == ["pbkdf2_sha256", "True", "False"], result.stderr


def test_without_redis_the_broker_is_embedded():
    if os.environ.get("REDIS_URL"):
        assert os.environ["REDIS_URL"] == settings.CELERY_BROKER_URL
    else:
        assert settings.CELERY_BROKER_URL == "filesystem://"


def test_every_setting_read_from_the_environment_is_in_the_configuration_table():
    """docs/configuration.md says all settings come from environment variables: its table
    names each one in a row's first column."""
    root = Path(__file__).resolve().parent.parent
    source = (root / "hitl" / "settings.py").read_text()
    names = set(re.findall(r'env_(?:str|bool|int|float|list|secret)\("([A-Z0-9_]+)"', source))
    names |= set(re.findall(r'os\.environ\.get\("([A-Z0-9_]+)"', source))
    assert len(names) > 40
    page = (root / "docs" / "configuration.md").read_text()
    first_columns = " ".join(
        row.split("|")[1] for row in page.splitlines() if row.startswith("| `")
    )
    assert sorted(n for n in names if f"`{n}`" not in first_columns) == []


def documented_defaults(page: str) -> list[tuple[str, str]]:
    """(variable, default) for each row of the table whose default is written as literals
    only: one per variable, as in "`300`, `600`" for two variables."""
    pairs = []
    for row in page.splitlines():
        if not row.startswith("| `"):
            continue
        names_cell, default_cell = (cell.strip() for cell in row.strip("|").split("|")[:2])
        if not re.fullmatch(r"`[^`]*`(, `[^`]*`)*", default_cell):
            continue  # a default in words ("three quarters of WEB_THREADS")
        names = re.findall(r"`([A-Z0-9_]+)`", names_cell)
        defaults = re.findall(r"`([^`]*)`", default_cell)
        if len(defaults) == 1:
            defaults *= len(names)
        pairs.extend(zip(names, defaults, strict=True))
    return pairs


def code_defaults(settings_source: str, procfile: str) -> dict[str, object]:
    """The default each env_*("NAME", default) call in settings.py gives when it is a literal,
    and each ${NAME:-default} of the Procfile."""
    found: dict[str, object] = {}
    for node in ast.walk(ast.parse(settings_source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id.startswith("env_")
            and len(node.args) == 2
            and isinstance(node.args[0], ast.Constant)
        ):
            # A default computed from another setting is not a literal: the table says how.
            with contextlib.suppress(ValueError):
                found[node.args[0].value] = ast.literal_eval(node.args[1])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "env_bool"
            and len(node.args) == 1
        ):
            found[node.args[0].value] = False
    for name, default in re.findall(r"\$\{([A-Z0-9_]+):-([^}]*)\}", procfile):
        found.setdefault(name, default)
    return found


def test_the_configuration_table_states_the_defaults_the_code_has():
    root = Path(__file__).resolve().parent.parent
    page = (root / "docs" / "configuration.md").read_text()
    code = code_defaults(
        (root / "hitl" / "settings.py").read_text(), (root / "Procfile").read_text()
    )
    documented = [(name, written) for name, written in documented_defaults(page) if name in code]
    assert len(documented) > 30  # the rest are computed (a path, a URL built from BASE_DIR)
    wrong = []
    for name, written in documented:
        value = code[name]
        if isinstance(value, bool):
            same = written == str(value).lower()
        elif isinstance(value, (int, float)):
            same = float(written) == value
        else:
            same = written == str(value)
        if not same:
            wrong.append((name, written, value))
    assert wrong == []

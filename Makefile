# Two commands for a newcomer: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
# Production installs requirements.txt; `make run` and `make test` add the development tools.
REQUIREMENTS := requirements.txt requirements-dev.txt
STAMP := $(VENV)/.installed-$(shell cat $(REQUIREMENTS) | sha1sum | cut -c1-12)
# Test-only JavaScript (axe-core for the accessibility test), pinned in package-lock.json.
NPM_STAMP := node_modules/.installed-$(shell cat package.json package-lock.json | sha1sum | cut -c1-12)

.PHONY: run test install migrate seed lint format bench clean

$(STAMP): $(REQUIREMENTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	rm -f $(VENV)/.installed-* && touch $(STAMP)

# Without npm the install goes on and the accessibility test skips (fails with CI=true).
$(NPM_STAMP): package.json package-lock.json
	@if command -v npm >/dev/null; then \
		npm ci --no-audit --no-fund --loglevel=error && touch $(NPM_STAMP); \
	else echo "npm not found: the accessibility test will skip (apt-get install npm)"; fi

install: $(STAMP) $(NPM_STAMP)

# Web, Celery worker, Celery beat and the MCP server (on :8001) with SQLite and the embedded
# filesystem broker; web on http://127.0.0.1:8000; Ctrl-C stops all four.
run: export DEBUG ?= true
run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start -f Procfile.dev

# The whole suite. DATABASE_URL / REDIS_URL select PostgreSQL / Redis; tests that need a
# missing service skip (or fail, with CI=true). PYTEST_ARGS passes options through. It runs
# one pytest-xdist worker per core; TEST_WORKERS=0 runs it in one process (e.g. for --pdb).
TEST_WORKERS ?= auto
test: export SECRET_KEY ?= insecure-test-only-key
test: install
	$(PY) -m pytest --numprocesses $(TEST_WORKERS) $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The speed goals in one run, one table at the end (docs/benchmarks.md); needs PostgreSQL and
# REDIS_URL. ARGS passes options, e.g. `make bench ARGS=--quick` for a smoke run.
bench: $(STAMP)
	$(PY) bench/goals.py $(ARGS)

clean:
	rm -rf $(VENV) node_modules var db.sqlite3 staticfiles .pytest_cache .ruff_cache .hypothesis

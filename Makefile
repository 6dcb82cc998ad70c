# capplan: `make demo` and `make test` work on a fresh machine with Python >= 3.11 and the package registries.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DB ?= demo.duckdb

.PHONY: demo test test-fast bench sample clean

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

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/run.py

# Regenerate the bundled sample from the seeded generator.
sample: $(STAMP)
	$(BIN)/python -m capplan.sample data/samples/cluster

clean:
	rm -rf $(VENV) $(DEMO_DB) $(DEMO_DB).wal .pytest_cache

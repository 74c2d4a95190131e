# ldct-pipeline: two commands on a fresh machine -> `make demo`, `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: demo test test-all lint format typecheck bench docs-cli clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

## Run the whole pipeline on the built-in demo data and print where the results are.
demo: $(STAMP)
	$(VENV)/bin/ldct demo --out demo_out

## Run the default (fast) test suite.
test: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

## Everything, including tests marked slow.
test-all: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check pipeline tests benchmarks
	$(VENV)/bin/ruff format --check pipeline tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff format pipeline tests benchmarks
	$(VENV)/bin/ruff check --fix pipeline tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

## Run every benchmark (prints side-by-side ratios; see docs/benchmarks.md).
bench: $(STAMP)
	for f in benchmarks/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

## Regenerate docs/cli.md from the CLI itself.
docs-cli: $(STAMP)
	$(PY) -m pipeline.cli.docgen > docs/cli.md

clean:
	rm -rf $(VENV) demo_out .pytest_cache .mypy_cache .ruff_cache

# ldct-pipeline: two commands on a fresh machine -> `make demo`, `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: demo test test-all lint format typecheck bench docs-cli clean

$(STAMP): pyproject.toml
	@echo "== [1/3] creating $(VENV) (Python: $$($(PYTHON) --version 2>&1))"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@echo "== [2/3] installing torch 2.14.1 + torchvision 0.29.1: the CUDA build, ~4.2 GB of wheels"
	@echo "   (~5.5 GB in $(VENV); taken from the local wheel cache where there is one, else"
	@echo "   downloaded from PyPI: 1-5 min). pip prints each package as it goes."
	$(PY) -m pip install --progress-bar off torch==2.14.1 torchvision==0.29.1 | grep -E '^(Collecting|Downloading|Processing|Installing|Successfully)' || true
	$(PY) -c "import torch, torchvision" || { echo "torch install failed (see above)"; exit 1; }
	@echo "== [3/3] installing ldct-pipeline and its dependencies (MONAI, pydicom, SimpleITK, ...: ~400 MB)"
	$(PY) -m pip install --progress-bar off -e '.[dev]' | grep -E '^(Collecting|Installing|Successfully)' || true
	$(PY) -c "import pipeline, monai, pydicom" || { echo "package install failed (see above)"; exit 1; }
	touch $(STAMP)
	@echo "== environment ready: $(VENV)"

## Run the whole pipeline on the built-in demo data and print where the results are.
demo: $(STAMP)
	$(VENV)/bin/ldct demo --out demo_out

## Run the default (fast) test suite, then the CPU-class tests again as on an AVX2-only CPU.
test: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)
	ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 $(PY) -m pytest -q -m "cpu_class and not slow" -p no:cacheprovider

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

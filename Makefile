# Two entry points for a fresh machine:
#   make demo  -> creates .venv, installs taskweight, runs the quick benchmark (all nine methods on synth-kitti)
#   make test  -> creates .venv if needed, installs with test extras, runs pytest
#   make lint  -> ruff (lint + import order), ruff format --check and mypy (.ci/run runs it before the tests)
#   make docs  -> the documentation site into site/ (generated CLI and strategy pages; warnings are errors)
#   make wheel-check -> builds the wheel + sdist, installs the wheel into a fresh venv, runs --help and an example
#   make mutate -> mutation testing of the modules that produce reported numbers (hours; not in CI).
#                  MUTANTS="taskweight.metrics*" limits it to some functions; `.venv/bin/mutmut results` lists survivors
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= runs/demo
STAMP := $(VENV)/.installed

MUTANTS ?=

.PHONY: demo test lint docs wheel-check install clean mutate

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[test,lint,docs,release]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/taskweight bench --preset quick --out $(DEMO_DIR)  # prints $(DEMO_DIR)/table2.md when done

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests examples tools docs benchmarks
	$(BIN)/ruff format --check src tests examples tools docs benchmarks
	$(BIN)/mypy src

docs: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python docs/gen_pages.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet -d site

wheel-check: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python tools/check_wheel.py

mutate: $(STAMP)
	$(BIN)/pip install -q -e '.[test,mutation]'
	OMP_NUM_THREADS=1 $(BIN)/mutmut run --max-children $${JOBS:-1} $(MUTANTS)

clean:
	rm -rf $(VENV) runs mutants site dist build

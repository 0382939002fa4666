# Two entry points for a fresh machine:
#   make demo  -> creates .venv, installs taskweight, runs the quick benchmark (all nine methods on synth-kitti)
#   make test  -> creates .venv if needed, installs with test extras, runs pytest
#   make mutate -> mutation testing of the modules that produce reported numbers (hours; not in CI).
#                  MUTANTS="taskweight.metrics*" limits it to some functions; `.venv/bin/mutmut results` lists survivors
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= runs/demo
STAMP := $(VENV)/.installed

MUTANTS ?=

.PHONY: demo test install clean mutate

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/taskweight bench --preset quick --out $(DEMO_DIR)  # prints $(DEMO_DIR)/table2.md when done

test: $(STAMP)
	$(BIN)/python -m pytest -q

mutate: $(STAMP)
	$(BIN)/pip install -q -e '.[test,mutation]'
	OMP_NUM_THREADS=1 $(BIN)/mutmut run --max-children $${JOBS:-1} $(MUTANTS)

clean:
	rm -rf $(VENV) runs mutants

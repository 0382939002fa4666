# Two entry points for a fresh machine:
#   make demo  -> creates .venv, installs taskweight, runs the quick benchmark (all nine methods on synth-kitti)
#   make test  -> creates .venv if needed, installs with test extras, runs pytest
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= runs/demo
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

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

clean:
	rm -rf $(VENV) runs

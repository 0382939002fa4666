# Two entry points for a fresh machine:
#   make demo  -> creates .venv, installs taskweight, generates synth-kitti and trains on it
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
	$(BIN)/taskweight synth --preset synth-kitti --out $(DEMO_DIR)/synth-kitti --train 800 --val 200 --test 200 --seed 0
	$(BIN)/taskweight train --data $(DEMO_DIR)/synth-kitti --format kitti --preset quick --method equal --out $(DEMO_DIR)/equal
	$(BIN)/taskweight evaluate $(DEMO_DIR)/equal --split test

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs

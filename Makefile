# Two entry points for a fresh Linux machine with Python 3.11 (see README.md):
#   make demo   install everything into .venv, then simulate -> train -> estimate -> evaluate -> report
#   make test   install everything (with test extras) into .venv, then run the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= demo_output
PIP_INSTALL := $(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt
STAMP := $(VENV)/.installed

.PHONY: demo test install clean-demo

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(PIP_INSTALL) -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py --outdir $(DEMO_DIR)

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

clean-demo:
	rm -rf $(DEMO_DIR)

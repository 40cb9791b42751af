# Two commands on a fresh machine with Python 3.11+:
#   make run    create .venv, install chatd, run it on ./config.toml (data in ./data)
#   make test   install the test extras and run the whole suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/chatd --config config.toml

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check chatd tests bench

bench: $(VENV)/.installed-test
	$(BIN)/python -m bench.driver --runs 3

clean:
	rm -rf $(VENV) .pytest_cache

# Every target bootstraps what it needs: a fresh clone needs only python3 (and node for package).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STAGE ?= dev
PYTEST_WORKERS ?= 2

.PHONY: venv test lint typecheck demo bench package deploy clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check functions tests scripts
	$(BIN)/ruff format --check functions tests scripts

typecheck: $(STAMP)
	$(BIN)/mypy -p vpcflow_partitioner
	$(BIN)/mypy tests

test: $(STAMP) lint typecheck
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -q

demo: $(STAMP)
	$(BIN)/vpcflow-partitioner demo

bench: $(STAMP)
	$(BIN)/python scripts/bench.py

clean:
	rm -rf $(VENV) node_modules .serverless .pytest_cache .mypy_cache .ruff_cache

# Every target bootstraps what it needs: a fresh clone needs only python3 (and node for package).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
MUTATE_STAMP := $(VENV)/.installed-mutate
STAGE ?= dev
PYTEST_WORKERS ?= 2

NODE_STAMP := node_modules/.installed

.PHONY: venv test lint typecheck demo bench bench-scale mutate mutate-quick precompile package deploy clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP) $(DEMO_STAMP)

# The demo needs the package and moto's server only (not pytest, mypy, pyarrow or cfn-lint).
$(DEMO_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[demo]"
	touch $(DEMO_STAMP)

venv: $(STAMP)

# osls, pinned with its lockfile (the open-source Serverless Framework v3 line; v4 needs a login)
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

lint: $(STAMP)
	$(BIN)/ruff check functions tests scripts
	$(BIN)/ruff format --check functions tests scripts

typecheck: $(STAMP)
	$(BIN)/mypy -p vpcflow_partitioner
	$(BIN)/mypy tests

test: $(STAMP) $(NODE_STAMP) lint typecheck
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile -q

demo: $(DEMO_STAMP)
	$(BIN)/vpcflow-partitioner demo

bench: $(STAMP)
	$(BIN)/python scripts/bench.py

# An organisation's backfill, simulated (docs/SCALE.md): 1,000 accounts x 20 regions x 3 years;
# the real walk and pipeline run on a sample, the rest is replayed (~3 minutes on 2 cores).
# SCALE_ARGS="--sample-accounts 50" for a larger sample, "--full" to run it all (hours), --help.
SCALE_ARGS ?=
bench-scale: $(STAMP)
	$(BIN)/python scripts/bench_scale.py $(SCALE_ARGS)

$(MUTATE_STAMP): pyproject.toml $(STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[dev,mutate]"
	touch $(MUTATE_STAMP)

# Mutation testing of the modules that run in Lambda (docs/TESTING.md); not part of `test`.
# SAMPLE=10 runs one mutant in ten (2, 5, 10 or 20), MODULE=cache one module, WORKERS the children.
SAMPLE ?= 1
MODULE ?=
WORKERS ?= 2
mutate: $(MUTATE_STAMP)
	$(BIN)/python scripts/mutate.py --sample $(SAMPLE) --workers $(WORKERS) $(foreach m,$(MODULE),--module $(m))

# The same one-in-twenty sample every time, comparable from run to run (docs/TESTING.md).
mutate-quick: SAMPLE = 20
mutate-quick: mutate

# The function runs on python3.12: its bytecode in the zip saves compiling our modules at every
# cold start (~20 ms of ~40). Checked-hash .pyc files stay valid whatever times the zip keeps.
PY312 := $(shell for p in $(HOME)/.pyenv/versions/3.12*/bin/python3.12 $$(command -v python3.12); do \
	"$$p" -c "" 2>/dev/null && { echo "$$p"; break; }; done)
precompile:
	@rm -f functions/vpcflow_partitioner/__pycache__/*.cpython-312.pyc
	@# -f: rewrite, so that no timestamp-checked .pyc stays (the zip keeps no times that match)
	@if [ -n "$(PY312)" ]; then \
		$(PY312) -m compileall -q -f --invalidation-mode checked-hash -x '/ops/' functions/vpcflow_partitioner; \
	else echo "warning: no python3.12 here: the zip carries no bytecode, so each cold start compiles our modules (~20 ms)" >&2; fi

# The stage's params, as osls takes them: PARAMS="--param=sourceBucket=acme-flow-logs --param=trigger=eventbridge"
PARAMS ?=
REGION ?= us-east-1

# Offline, no AWS credentials needed: the CloudFormation template and the zip in .build/package-$(STAGE)
# make package STAGE=prod PARAMS="--param=sourceBucket=acme-flow-logs"
package: $(STAMP) $(NODE_STAMP) precompile
	VPCFLOW_PYTHON=$(abspath $(BIN)/python) npx serverless package --stage $(STAGE) --region $(REGION) $(PARAMS) --package .build/package-$(STAGE)
	$(BIN)/cfn-lint .build/package-$(STAGE)/cloudformation-template-update-stack.json

# Needs AWS credentials for the target account:
# make deploy STAGE=prod REGION=eu-west-1 PARAMS="--param=sourceBucket=acme-flow-logs"
deploy: $(STAMP) $(NODE_STAMP) precompile
	VPCFLOW_PYTHON=$(abspath $(BIN)/python) npx serverless deploy --stage $(STAGE) --region $(REGION) $(PARAMS)

clean:
	rm -rf $(VENV) node_modules .serverless .pytest_cache .mypy_cache .ruff_cache .mutmut

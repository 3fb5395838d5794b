# migrator — see README.md. `make demo` and `make test` install what they need first.
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
MIGRATOR := $(BIN)/migrator
CONFIG ?= migration.yaml
ARGS ?=
PHASE ?= 1
STAMP := $(VENV)/.installed

# Terraform takes the hashicorp/aws provider from the local filesystem mirror when this machine has one.
TF_PLUGIN_MIRROR ?= /opt/tf-plugins
ifneq ($(wildcard $(TF_PLUGIN_MIRROR)/registry.terraform.io),)
export TF_CLI_CONFIG_FILE := $(CURDIR)/tf.rc
endif

.PHONY: install test test-fast demo lint fmt bench plan status verify phase-1 phase-2 phase-3 phase-4 clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,engine]'
	touch $(STAMP)

test: install
	$(BIN)/pytest

test-fast: install
	$(BIN)/pytest -m "not terraform and not e2e"

demo: install
	$(MIGRATOR) demo $(ARGS)

lint: install
	$(BIN)/ruff check migrator tests bench
	$(BIN)/ruff format --check migrator tests bench
	$(BIN)/mypy
	terraform fmt -check -recursive terraform modules

fmt: install
	$(BIN)/ruff format migrator tests bench
	$(BIN)/ruff check --fix migrator tests bench
	terraform fmt -recursive terraform modules

bench: install
	$(BIN)/python bench/bench_replicator.py
	$(BIN)/python bench/bench_verify.py

plan: install
	$(MIGRATOR) plan --phase $(PHASE) --config $(CONFIG) $(ARGS)

status: install
	$(MIGRATOR) status --config $(CONFIG) $(ARGS)

verify: install
	$(MIGRATOR) verify --config $(CONFIG) $(ARGS)

phase-1 phase-2 phase-3 phase-4: install
	$(MIGRATOR) apply --phase $(@:phase-%=%) --config $(CONFIG) $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

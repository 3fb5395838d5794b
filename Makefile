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

# checkov pins its own boto3, so it lives in a venv of its own, never in $(VENV).
CHECKOV_VENV ?= .venv-checkov
CHECKOV_VERSION ?= 3.3.30
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)
# Offline: no Prisma Cloud/Bridgecrew download (guidelines, policies), no PyPI version check.
CHECKOV := BC_SKIP_MAPPING=TRUE CKV_SKIP_PACKAGE_UPDATE_CHECK=TRUE $(CHECKOV_VENV)/bin/checkov

# Terraform takes the hashicorp/aws provider from the local filesystem mirror when this machine has one.
TF_PLUGIN_MIRROR ?= /opt/tf-plugins
ifneq ($(wildcard $(TF_PLUGIN_MIRROR)/registry.terraform.io),)
export TF_CLI_CONFIG_FILE := $(CURDIR)/tf.rc
endif

.PHONY: help install test test-fast demo lint fmt bench plan status verify clean

help: install
	@echo "make demo | test | test-fast | lint | bench | plan PHASE=N | status | verify, and the phases:"
	@$(MIGRATOR) phases

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,engine]'
	touch $(STAMP)

# pytest-xdist workers for `make test` and `make test-terraform`. Much of a Terraform test's time is waiting
# (on the provider's own waits, the emulator, the deployed function), so more workers than cores pay off; each
# worker has its own emulator and takes whole modules (--dist loadfile), so a module's shared migration is
# built once, in the order tests/conftest.py gives them (--no-loadscope-reorder): the whole migrations first.
TEST_WORKERS ?= 4
XDIST := -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

.PHONY: test-terraform

test: install
	$(BIN)/pytest $(XDIST)

# The other half of `make test`: real Terraform against the emulator, the end-to-end runs, the long property
# and chaos runs.
test-terraform: install
	$(BIN)/pytest $(XDIST) -m "terraform or e2e or slow"

# No Terraform, no bundled engine, no end-to-end or long property/chaos run. Terraform and the engine are
# replaced by stand-ins that record and refuse every call; tests/conftest.py fails the run on any call.
test-fast: install
	@rm -f .pytest-terraform-calls
	MIGRATOR_TERRAFORM=$(CURDIR)/tests/forbidden/terraform PYTHONPATH=$(CURDIR)/tests/forbidden \
	  $(BIN)/pytest $(XDIST) -m "not terraform and not e2e and not slow"

demo: install
	$(MIGRATOR) demo $(ARGS)

$(CHECKOV_STAMP):
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet checkov==$(CHECKOV_VERSION)
	touch $(CHECKOV_STAMP)

# Every step runs and must pass. Findings may only be skipped inline in the .tf files
# (`# checkov:skip=<id>: <reason>`); checkov exits non-zero on any other finding.
lint: install $(CHECKOV_STAMP)
	$(BIN)/ruff check migrator tests bench
	$(BIN)/ruff format --check migrator tests bench
	$(BIN)/mypy
	terraform fmt -check -recursive terraform modules
	@# Validate both roots without a backend; providers and modules go to a temporary TF_DATA_DIR,
	@# so nothing lands in the repository (and the committed lock files are only read).
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	for root in terraform/source terraform/target; do \
	  echo "terraform validate $$root"; \
	  export TF_DATA_DIR="$$tmp/$${root##*/}"; \
	  terraform -chdir=$$root init -backend=false -input=false -lockfile=readonly -no-color > "$$tmp/init.log" 2>&1 \
	    || { cat "$$tmp/init.log"; exit 1; }; \
	  terraform -chdir=$$root validate -no-color; \
	done
	$(CHECKOV) -d modules -d terraform --framework terraform --skip-download --compact --quiet

fmt: install
	$(BIN)/ruff format migrator tests bench
	$(BIN)/ruff check --fix migrator tests bench
	terraform fmt -recursive terraform modules

bench: install
	$(BIN)/python bench/bench_replicator.py
	$(BIN)/python bench/bench_verify.py
	$(BIN)/python bench/bench_lambda.py

plan: install
	$(MIGRATOR) plan --phase $(PHASE) --config $(CONFIG) $(ARGS)

status: install
	$(MIGRATOR) status --config $(CONFIG) $(ARGS)

verify: install
	$(MIGRATOR) verify --config $(CONFIG) $(ARGS)

# Every phase of `migrator phases`: make phase-1, make phase-2, …
phase-%: install
	$(MIGRATOR) apply --phase $* --config $(CONFIG) $(ARGS)

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

# The two commands in the README (`make demo`, `make test`) install what they need on first use and
# skip that work on later runs: each install step leaves a stamp newer than the files it read.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      := .venv
PY        := $(VENV)/bin/python
NODE_BIN  := $(CURDIR)/node_modules/.bin
STAMP_PY  := $(VENV)/.installed
STAMP_NPM := node_modules/.installed
# Test workers: one per core, at most 4 (each runs its own DynamoDB Local JVM). `make test JOBS=1` runs serially.
JOBS      ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && echo 4 || echo $$n)

# jsii (behind aws-cdk-lib) runs Node; use the supported Node 22 that package.json installs, not the
# machine's end-of-life Node 20, so no deprecation banner reaches the user.
export PATH      := $(NODE_BIN):$(CURDIR)/$(VENV)/bin:$(PATH)
export JSII_NODE := $(NODE_BIN)/node

.PHONY: help setup demo test synth bench clean

help:
	@echo "make demo   replicate a workload on DynamoDB Local (no AWS account) and verify the copy"
	@echo "make test   run every test (constructs, replicator, local runtime, end to end)"
	@echo "make synth  synthesize the example app into cdk.out/ (no AWS credentials needed)"
	@echo "make bench  run the benchmarks in benchmarks/ (not part of the tests)"

setup: $(STAMP_PY) $(STAMP_NPM)

$(STAMP_PY): pyproject.toml constraints.txt
	@command -v python3 >/dev/null || { echo "error: python3 (>= 3.11) is required" >&2; exit 1; }
	@echo "==> Installing Python dependencies into $(VENV) (log: $(VENV)/install.log)"
	@python3 -m venv $(VENV)
	@$(PY) -m pip install -c constraints.txt -e '.[test,spark]' > $(VENV)/install.log 2>&1 \
	  || { tail -n 30 $(VENV)/install.log >&2; echo "error: pip install failed, see $(VENV)/install.log" >&2; exit 1; }
	@touch $@

$(STAMP_NPM): package.json package-lock.json
	@command -v npm >/dev/null || { echo "error: npm (Node.js >= 18) is required for the CDK CLI and DynamoDB Local" >&2; exit 1; }
	@echo "==> Installing npm tooling: CDK CLI, Node 22, DynamoDB Local (log: npm-install.log)"
	@npm ci --no-audit --no-fund > npm-install.log 2>&1 \
	  || { tail -n 30 npm-install.log >&2; echo "error: npm ci failed, see npm-install.log" >&2; exit 1; }
	@rm -f npm-install.log
	@touch $@

demo: setup
	@$(PY) -m cdk_replication.local.demo

# Whole files go to the workers, longest first (tests/conftest.py orders them; xdist's own reordering by
# number of tests would hand out the long one-test files last and leave one worker running them alone).
test: setup
	@$(PY) -m pytest -n $(JOBS) --dist loadfile --no-loadscope-reorder

synth: setup
	@$(NODE_BIN)/cdk synth --quiet --no-notices

bench: setup
	@$(PY) -m benchmarks

clean:
	rm -rf $(VENV) node_modules cdk.out .pytest_cache .hypothesis

# The front door. `make demo` runs real sagas on the local cloud; `make test` runs every test.
# Both create .venv themselves (Python 3.11+, pip), so a fresh clone needs nothing else.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install demo up serve test unit lint typecheck e2e conformance samples bench chaos clean

help:
	@echo "make demo         run three sagas end to end on the local cloud and show what happened"
	@echo "make test         every test: lint, types, unit, contract, deploy plan, e2e, Pub/Sub conformance"
	@echo "make up           run the whole stack (emulators, functions, demo participants, web console) until Ctrl-C"
	@echo "make serve        run just the emulators until Ctrl-C"
	@echo "make conformance  google-cloud-pubsub's own system tests against the Pub/Sub emulator"
	@echo "make samples SAMPLES_DIR=DIR  Google's workflows, Cloud Tasks, Secret Manager and Pub/Sub samples against"
	@echo "                  the local cloud (DIR holds checkouts of the samples repositories; not part of make test)"
	@echo "make bench        speed, scale and cost per saga (writes bench/results.json)"
	@echo "make chaos        1,000 sagas while functions and participants are SIGKILLed and restarted (checks every saga)"

$(STAMP): requirements.txt requirements-local.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m devstack demo

up: $(STAMP)
	$(BIN)/python -m devstack up

serve: $(STAMP)
	$(BIN)/python -m localcloud serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy shared/saga_orchestrator participant/saga_participant localcloud devstack functions examples tests bench

unit: $(STAMP)
	$(BIN)/python -m pytest -q -m "not e2e" tests

e2e: $(STAMP)
	$(BIN)/python -m pytest -q -m e2e tests/e2e

bench: $(STAMP)
	$(BIN)/python -m bench

# The report goes to stdout, and under "chaos" into bench/results.json when that file exists.
chaos: $(STAMP)
	$(BIN)/python -m bench.chaos --sagas 1000 $(if $(wildcard bench/results.json),--json bench/results.json)

conformance: $(STAMP)
	PYTHON=$(abspath $(BIN))/python bash tests/conformance/run_pubsub_system_tests.sh

# Google's samples live on GitHub, which CI cannot reach: DIR holds local checkouts (workflows-samples,
# python-docs-samples, python-pubsub); see README "Google's samples against the local cloud".
samples: $(STAMP)
	@test -n "$(SAMPLES_DIR)" || { echo "usage: make samples SAMPLES_DIR=DIR (checkouts of the samples repositories)"; exit 2; }
	mkdir -p build
	$(BIN)/python -m tests.samples.run_samples --samples-dir "$(SAMPLES_DIR)" --json build/samples-results.json

# Two workers, one test file each at a time (each worker runs its own local stack for the e2e files).
test: lint typecheck conformance $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile tests

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info

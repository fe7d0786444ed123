# Chronicle — the two commands a new machine needs are `make run` and `make test`.
# Both create/refresh .venv from pyproject.toml themselves.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS_RUN ?= local
# torch in the test extras: the reference the ONNX model is tested against (tests/test_local_model.py).
EXTRAS_TEST ?= test,local,torch
DEMO_EVENTS ?= 0

.PHONY: run test lint bench chaos clean venv-run venv-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# One stamp per extras set: editing pyproject.toml or switching targets re-installs. The `local` extra's
# model package (models/minilm-onnx, not on PyPI) is installed from this checkout alongside.
MODEL_PACKAGE := models/minilm-onnx
$(VENV)/.installed-%: pyproject.toml $(MODEL_PACKAGE)/pyproject.toml $(MODEL_PACKAGE)/chronicle_minilm_onnx/files/export.json | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[$(subst +,$(comma),$*)]" $(if $(findstring local,$*),./$(MODEL_PACKAGE))
	@rm -f $(VENV)/.installed-*
	@touch $@

comma := ,
venv-run: $(VENV)/.installed-$(subst $(comma),+,$(EXTRAS_RUN))
venv-test: $(VENV)/.installed-$(subst $(comma),+,$(EXTRAS_TEST))

## The main job on the embedded default (no server, no API key).
run: venv-run
	$(BIN)/python -m pipeline.demo --events $(DEMO_EVENTS)

## Lint, the architecture contracts, types, then the whole test suite (Redis/PostgreSQL tests skip on a
## laptop without them, fail under CI=true).
test: venv-test
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## The fault-injection suite in full 10 000+ events and 20 kill -9s, outage, contention,
## duplicates, hostile input. `make test` runs the same scenarios bounded (CHAOS_FULL unset).
chaos: venv-test
	CHAOS_FULL=1 $(BIN)/python -m pytest tests/chaos -q -s -p no:cacheprovider --timeout 1800 $(PYTEST_ARGS)

lint: venv-test
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

## Benchmarks: each prints its ratio against a baseline measured in the same run.
bench: venv-test
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) data build dist *.egg-info .pytest_cache .ruff_cache

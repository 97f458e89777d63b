# Strata developer entry points. `make demo` and `make test` do all the set-up themselves.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
export STRATA_HOME ?= $(CURDIR)/.strata
# Never let google-auth probe the metadata server, nor dbt phone home (see README, "Offline").
export NO_GCE_CHECK := true
export GCE_METADATA_HOST := 127.0.0.1:9
export GCE_METADATA_IP := 127.0.0.1:9
export GCE_METADATA_ROOT := 127.0.0.1:9
export DBT_SEND_ANONYMOUS_USAGE_STATS := False

# Python 3.12 on PATH, else under pyenv; else 3.11 with Django 5.2 LTS (validated too).
PYTHON ?= $(shell \
  if python3.12 -c 'import sys' >/dev/null 2>&1; then command -v python3.12; \
  elif command -v pyenv >/dev/null 2>&1 && ls "$$(pyenv root)"/versions/3.12*/bin/python3.12 >/dev/null 2>&1; then \
    ls "$$(pyenv root)"/versions/3.12*/bin/python3.12 | tail -n 1; \
  elif python3.11 -c 'import sys' >/dev/null 2>&1; then command -v python3.11; fi)

BQEMU_VENV ?= .venv-bqemulator
# The BigQuery stand-in for the dbt conformance test, when it has been built (`make bqemulator`).
ifneq ($(wildcard $(BQEMU_VENV)/.installed),)
export STRATA_BQEMULATOR_PYTHON ?= $(CURDIR)/$(BQEMU_VENV)/bin/python
endif

.PHONY: venv demo test test-fast bench bench-transform bench-api bench-anomaly bench-dashboards docs clean help bqemulator
help:
	@echo "make demo   - generate events, ingest, build the dbt layers, serve the API, print where to look"
	@echo "make test   - run the whole test suite (slow end-to-end tests included)"
	@echo "make test-fast - skip tests marked slow"
	@echo "make bench  - the ingest benchmark (bench-transform, bench-api: the dbt and API ones;"
	@echo "              bench-anomaly, bench-dashboards: anomaly detection, dashboard page loads)"

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt setup.py
	@if [ -z "$(PYTHON)" ]; then echo "Strata needs Python 3.12 (or 3.11); none found on PATH or under pyenv." >&2; exit 1; fi
	@echo "Using $(PYTHON) ($$($(PYTHON) --version))"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@if $(BIN)/python -c 'import sys; sys.exit(sys.version_info >= (3, 12))'; then \
	  echo "Python < 3.12: installing Django 5.2 LTS instead of 6.x" >&2; \
	  sed -e 's/^[Dd]jango==.*/django==5.2.19/' requirements.txt > $(VENV)/requirements.txt; \
	else cp requirements.txt $(VENV)/requirements.txt; fi
	$(BIN)/python -m pip install --quiet -r $(VENV)/requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

bqemulator: $(BQEMU_VENV)/.installed

$(BQEMU_VENV)/.installed: requirements-bqemulator.txt
	test -x $(BQEMU_VENV)/bin/python || $(PYTHON) -m venv $(BQEMU_VENV)
	$(BQEMU_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BQEMU_VENV)/bin/python -m pip install --quiet -r requirements-bqemulator.txt
	touch $@

demo: venv
	$(BIN)/python -m strata demo

test: venv
	$(BIN)/python -m pytest

test-fast: venv
	$(BIN)/python -m pytest -m "not slow"

bench: venv
	$(BIN)/python bench/ingest_batch.py

bench-transform: venv
	$(BIN)/python bench/transform.py

bench-api: venv
	$(BIN)/python bench/api.py --prepare

bench-anomaly: venv
	$(BIN)/python bench/anomaly.py

bench-dashboards: venv
	$(BIN)/python bench/dashboards.py

docs: venv
	$(BIN)/python -m strata docs

clean:
	rm -rf .strata .pytest_cache

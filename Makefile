# Strata developer entry points. `make demo` and `make test` do all the set-up themselves.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
# Local state goes to $STRATA_HOME, by default .strata in this checkout (strata_core/paths.py).
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

AIRFLOW_VENV ?= .venv-airflow
# Airflow 3 + the Google provider for the DAG tests (`make airflow`), in a venv of its own.
ifneq ($(wildcard $(AIRFLOW_VENV)/.installed),)
export STRATA_AIRFLOW_PYTHON ?= $(CURDIR)/$(AIRFLOW_VENV)/bin/python
endif
# One venv per image, each from its own pinned set (`make image-venvs`): proves each set installs
# alone with a clean `pip check`, and tests/test_deploy_artifacts.py imports each image's code in it.
IMAGES := ingest api transform collector
IMAGE_VENVS ?= .venv-images

.PHONY: venv demo test test-fast bench bench-transform bench-api bench-stream bench-anomaly bench-dashboards docs clean help bqemulator airflow image-venvs
help:
	@echo "make demo   - generate events, ingest, build the dbt layers, serve the API, print where to look"
	@echo "make test   - run the whole test suite (slow end-to-end tests included)"
	@echo "make test-fast - skip tests marked slow"
	@echo "make bench  - the ingest benchmark (bench-transform, bench-api, bench-stream: the dbt, API and streaming ones;"
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

airflow: $(AIRFLOW_VENV)/.installed

$(AIRFLOW_VENV)/.installed: requirements-airflow.txt
	test -x $(AIRFLOW_VENV)/bin/python || $(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet -r requirements-airflow.txt
	$(AIRFLOW_VENV)/bin/python -m pip check
	touch $@

image-venvs: $(IMAGES:%=$(IMAGE_VENVS)/%/.installed)

$(IMAGE_VENVS)/%/.installed: requirements/%.txt
	rm -rf $(IMAGE_VENVS)/$*
	$(PYTHON) -m venv $(IMAGE_VENVS)/$*
	$(IMAGE_VENVS)/$*/bin/python -m pip install --quiet --upgrade pip
	$(IMAGE_VENVS)/$*/bin/python -m pip install --quiet -r requirements/$*.txt
	$(IMAGE_VENVS)/$*/bin/python -m pip check
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

bench-stream: venv
	$(BIN)/python bench/stream.py --candidates
	$(BIN)/python bench/stream.py --rates 1000,2000,4000,6000,8000 --seconds 60
	$(BIN)/python bench/stream.py --ceilings

bench-anomaly: venv
	$(BIN)/python bench/anomaly.py

bench-dashboards: venv
	$(BIN)/python bench/dashboards.py

docs: venv
	$(BIN)/python -m strata docs

clean:
	rm -rf .strata .pytest_cache $(IMAGE_VENVS)

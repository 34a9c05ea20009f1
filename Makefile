# Baton: `make run` runs the product with demo data, `make test` runs the test suite.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv installs Python packages from uv.lock; bootstrapped into var/tools when the machine lacks it.
UV := $(shell uv --version >/dev/null 2>&1 && command -v uv || echo var/tools/bin/uv)
# Django 6 needs Python 3.12+; prefer one pyenv already has over a download.
ifndef UV_PYTHON
UV_PYTHON := $(firstword $(wildcard $(HOME)/.pyenv/versions/3.1[2-9]*/bin/python3))
endif
ifneq ($(UV_PYTHON),)
export UV_PYTHON
endif
RUN := $(UV) run --frozen

.PHONY: help install run test lint fmt bench manage

help:
	@echo "make run     run Baton (web, worker, beat) with demo data at http://127.0.0.1:8000"
	@echo "make test    lint, then the whole test suite against real PostgreSQL, Redis and Celery"
	@echo "make bench   the benchmarks"
	@echo "make manage ARGS=\"create_user ...\"   manage.py against what make run runs"

var/tools/bin/uv:
	python3 -m venv var/tools && var/tools/bin/pip install -q uv

# Bytecode compiled once here, as the Dockerfile does: where Python writes none (PYTHONDONTWRITEBYTECODE, as on the CI
# machine) every process compiled Django and the rest from source as it started: 3.7 s of CPU per web worker or
# worker child, 1.2 s compiled.
install: $(UV)
	$(UV) sync --frozen --compile-bytecode

run: install
	$(RUN) python -m crm.launch run

lint: install
	$(RUN) ruff format --check .
	$(RUN) ruff check .

fmt: install
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

test: lint
	$(RUN) python -m crm.launch test $(ARGS)

bench: install
	$(RUN) python -m crm.launch bench $(ARGS)

manage: install
	$(RUN) python -m crm.launch manage $(ARGS)

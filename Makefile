# Mailcenter: `make run` starts everything on this machine, `make test` runs the suite.
# Every target uses the virtualenv in .venv, created and filled on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MANAGE := $(BIN)/python manage.py
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install run test lint fmt worker beat bench

help:
	@echo "make run     install, migrate, create the first admin, start web + worker + scheduler"
	@echo "make test    run the test suite (PYTEST_ARGS='-k name' to narrow it)"
	@echo "make lint    ruff check and format check"
	@echo "make fmt     ruff format and autofix"
	@echo "make worker  a Celery worker only (scale-out)"
	@echo "make beat    the Celery beat scheduler only (exactly one per installation)"
	@echo "make bench   run every benchmark in bench/"

install: $(STAMP)

# Re-installs only when pyproject.toml changes; the stamp lives inside the venv so that
# deleting .venv starts over.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: install
	$(MANAGE) migrate --noinput
	$(MANAGE) collectstatic --noinput --verbosity 0
	$(MANAGE) bootstrap_admin
	exec $(MANAGE) runall

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

worker: install
	exec $(BIN)/celery -A mailcenter worker -l info

beat: install
	exec $(BIN)/celery -A mailcenter beat -l info

bench: install
	@set -e; for script in bench/*.py; do \
		case "$$script" in bench/bench*.py) continue;; esac; \
		echo "== $$script"; \
		$(BIN)/python $$script; \
	done

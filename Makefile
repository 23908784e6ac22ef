# MovieFlix Lab — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
.ONESHELL:

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
CLI    := $(BIN)/movieflix-lab
INSTALLED := $(VENV)/.installed
KAFKA_LIBS := .kafka/libs/.pom.sha256
PYTEST_ARGS ?=

.PHONY: help setup sysdeps kafka demo test test-fast lab check format clean bench soak soak-recovery soak-cluster

help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "; printf "MovieFlix Lab targets:\n"} \
	  /^[a-zA-Z_.-]+:.*## / {printf "  make %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

sysdeps: ## Install missing system packages (Java 17, Maven, PostgreSQL, Chromium) with apt-get when root.
	@missing=""
	command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"
	command -v mvn  >/dev/null || missing="$$missing maven"
	command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  missing="$$missing postgresql"
	command -v chromium >/dev/null || missing="$$missing chromium"
	if [ -n "$$missing" ]; then
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	    echo "installing:$$missing"
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null
	  else
	    echo "missing:$$missing — install them (apt-get install$$missing), then run make again" >&2; exit 1
	  fi
	fi

$(INSTALLED): pyproject.toml
	@set -e
	if [ -z "$(PYTHON)" ]; then echo "Python 3.11 not found: install python3.11, then run make again" >&2; exit 1; fi
	"$(PYTHON)" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || \
	  { echo "$(PYTHON) is not Python 3.11: set PYTHON=/path/to/python3.11" >&2; exit 1; }
	[ -x $(BIN)/python ] || "$(PYTHON)" -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

$(KAFKA_LIBS): kafka/pom.xml $(INSTALLED)
	@$(CLI) broker fetch

kafka: sysdeps $(INSTALLED) $(KAFKA_LIBS) ## Fetch the Kafka 4.3.1 broker jars with Maven (idempotent).

setup: sysdeps $(INSTALLED) $(KAFKA_LIBS) ## Create .venv, install the package (editable, dev extras), fetch Kafka.

demo: setup ## Set up, then run the main job end to end.
	@$(CLI) demo

test: setup ## Set up, then run the test suite against a real Kafka broker.
	@$(BIN)/pytest -m "not soak" $(PYTEST_ARGS)

test-fast: $(INSTALLED) ## The tests of pure logic only (no broker, no PostgreSQL): under 2 minutes.
	@$(BIN)/pytest -m "not integration and not soak" $(PYTEST_ARGS)

lab: setup ## JupyterLab on notebooks/ (movieflix-lab kernel, 127.0.0.1, root too); LAB_ARGS="--port N".
	@$(CLI) lab $(LAB_ARGS)

bench: setup ## Run the benchmarks; results in reports/benchmarks/.
	@$(BIN)/python -m benchmarks.gateway_ingest
	$(BIN)/python -m benchmarks.stream_catchup
	$(BIN)/python -m benchmarks.fraud_detection
	$(BIN)/python -m benchmarks.recommendations
	$(BIN)/python -m benchmarks.simulator
	$(BIN)/python -m benchmarks.gateway_outage
	$(BIN)/python -m benchmarks.poison
	$(BIN)/python -m benchmarks.end_to_end
	$(BIN)/python -m benchmarks.profiles
	$(BIN)/python -m benchmarks.wire_format
	$(BIN)/python -m benchmarks.summary

soak: setup ## Ten minutes of traffic with a 10x burst; lag, recovery, memory (reports/soak/).
	@$(CLI) soak $(SOAK_ARGS)

soak-recovery: setup ## The long crash loops left out of `make test` (at-least-once SIGKILL twins).
	@$(BIN)/pytest -m soak $(PYTEST_ARGS)

soak-cluster: setup ## The three-node failover tests at length: ten kills, 15-s outages.
	@MOVIEFLIX_TEST_CLUSTER_KILLS=10 MOVIEFLIX_TEST_CLUSTER_SECONDS_DOWN=15 \
		$(BIN)/pytest -s tests/test_reliability/test_cluster.py tests/test_reliability/test_cluster_streams.py $(PYTEST_ARGS)

check: $(INSTALLED) ## Lint and type-check (ruff, mypy).
	@$(BIN)/ruff check movieflix_lab tests benchmarks scripts notebooks
	$(BIN)/ruff format --check movieflix_lab tests benchmarks scripts
	$(BIN)/mypy

format: $(INSTALLED) ## Format the code (ruff).
	@$(BIN)/ruff check --fix movieflix_lab tests benchmarks
	$(BIN)/ruff format movieflix_lab tests benchmarks

environment.yml: pyproject.toml ## Regenerate environment.yml from pyproject.toml.
	@python3 scripts/write_environment_yml.py

clean: ## Stop the local broker and remove derived data (keeps data/raw).
	@[ -x $(CLI) ] && $(CLI) broker stop || true
	rm -rf data/kafka data/state data/processed .pytest_cache .mypy_cache .ruff_cache

# The two commands in the README: `make acceptance` and `make test`.
# Each installs what is missing (host packages, the virtual environment, the
# sandbox image) and then runs; a second run reuses all three.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FEATURE := features/podman_mtls.feature
ARGS ?=

.PHONY: acceptance test unit integration report-check image host bench clean

acceptance: image
	$(BIN)/behave $(FEATURE) $(ARGS)

# The report check runs after a failed acceptance run too: failure evidence is
# where a leaked key would most likely be.
test: unit
	@status=0; \
	$(MAKE) --no-print-directory acceptance || status=1; \
	$(MAKE) --no-print-directory report-check || status=1; \
	$(MAKE) --no-print-directory integration || status=1; \
	exit $$status

# Real behave runs, interrupted (SIGINT, SIGTERM), killed or refused before
# any scenario, checked for what they leave behind. Reports stay untouched.
integration: image
	$(BIN)/pytest -m podman tests/integration

# The reports of the last acceptance run, seen in headless Chromium and
# checked for private key material.
report-check: host $(STAMP)
	@status=0; \
	$(BIN)/pytest -m browser tests/browser || status=1; \
	$(BIN)/python scripts/check-reports reports || status=1; \
	exit $$status

unit: $(STAMP)
	$(BIN)/pytest

# Figures against this machine's floor (README, "Performance"); BENCH_ARGS
# passes options such as --skip-cold, --runs N or --json PATH.
BENCH_ARGS ?=
bench: image
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

image: host $(STAMP)
	$(BIN)/python -m openshell_acceptance.image

host:
	@scripts/install-host

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

clean:
	rm -rf reports/*.html reports/*.json reports/*.png reports/junit \
		reports/.private-key-fingerprints build src/*.egg-info

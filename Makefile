# The two commands in the README: `make acceptance` and `make test`.
# Each installs what is missing (host packages, the virtual environment, the
# sandbox image) and then runs; a second run reuses all three.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FEATURE := features/podman_mtls.feature
ARGS ?=

.PHONY: acceptance test unit image host bench clean

acceptance: image
	$(BIN)/behave $(FEATURE) $(ARGS)

test: unit acceptance

unit: $(STAMP)
	$(BIN)/pytest

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
	rm -rf reports/*.html reports/junit build src/*.egg-info

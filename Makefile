# WeLead: `make run` starts the whole stack in the foreground, `make test` runs the suite. See docs/running.md.
#
# The virtualenv is created on first use; installs are skipped while the requirements files are unchanged (the
# stamp file's name carries a hash of their contents, so editing, reverting or switching branches all do the right
# thing without relying on file times).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check

REQ_HASH := $(shell cat requirements.txt | sha256sum | cut -c1-16)
DEV_HASH := $(shell cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)
RUN_STAMP := $(VENV)/.installed-run-$(REQ_HASH)
DEV_STAMP := $(VENV)/.installed-dev-$(DEV_HASH)

BENCH_ARGS ?=
PYTEST_ARGS ?=

.PHONY: run test lint format bench bench-% venv clean

run: $(RUN_STAMP)
	$(PY) -m welead.run

# Quiet output comes from pytest's addopts (-q); a second -q would hide the closing "N passed" line CI reads.
# With DATABASE_URL=postgresql://... the suite runs on PostgreSQL; it starts its own embedded Redis either way.
test: $(DEV_STAMP)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

format: $(DEV_STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Callback throughput and latency against a bare Flask endpoint; needs wrk (apt-get install wrk).
bench: bench-callback

bench-%: $(RUN_STAMP)
	$(PY) bench/$*.py $(BENCH_ARGS)

venv: $(PY)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(RUN_STAMP): requirements.txt | $(PY)
	$(PIP) install -q -r requirements.txt
	rm -f $(VENV)/.installed-run-*
	touch $@

# The dev set includes the runtime set, so it satisfies `run` too.
$(DEV_STAMP): requirements.txt requirements-dev.txt | $(PY)
	$(PIP) install -q -r requirements-dev.txt
	rm -f $(VENV)/.installed-dev-* $(VENV)/.installed-run-*
	touch $@ $(RUN_STAMP)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

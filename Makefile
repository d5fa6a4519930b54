# Developer tasks for KATO. Every target that runs code sets up .venv first.
# Use another interpreter with: make PYTHON=python3.12 venv

PYTHON ?= python3
VENV = .venv
BIN = $(VENV)/bin

.PHONY: venv demo lab test browser bench lint clean

# $(call apt_install,COMMANDS,PACKAGES): install Debian's PACKAGES unless every one of COMMANDS
# is on PATH; only as root with apt-get, quietly, fetching the package lists first only when
# installing without them fails (none yet, or stale). Otherwise a note says what is missing; the
# target goes on either way.
apt = DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1) >/dev/null 2>&1
apt_install = for c in $(1); do command -v $$c >/dev/null || missing=1; done; \
	[ -z "$$missing" ] || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  { $(call apt,$(2)) || { apt-get update -qq >/dev/null && $(call apt,$(2)); }; }; } || \
	echo "note: $(2) not installed (needs root and apt-get); what needs $(1) skips or falls back" >&2

venv: $(VENV)/.installed

# The stamp is rebuilt only when pyproject.toml changes, so a second run is a no-op.
$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null || { \
		found=$$($(PYTHON) -c 'import sys; print(sys.version.split()[0])' 2>/dev/null || echo 'missing or not working'); \
		echo "error: KATO needs Python >= 3.11, but $(PYTHON) is $$found." >&2; \
		echo "       Install Python 3.11 or newer and run: make PYTHON=python3.11 venv" >&2; \
		exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# The main job: a papermill sweep of experiments/GRID.yaml (kato serve, 2 workers, the embedded
# Redis; production, R1 and R2 over 1…64 clients, 3 trials each, and one run with a Redis pause
# inside it). Its last line is the path of report.html.
demo: venv
	$(BIN)/kato lab sweep experiments/GRID.yaml

# JupyterLab on notebooks/ (notebooks/README.md says the order to read them in). Its python3
# kernel is the venv's interpreter, so the notebooks import this checkout's KATO. Jupyter
# refuses root unless told (a container's usual user).
lab: venv
	$(BIN)/jupyter lab $$([ "$$(id -u)" = 0 ] && echo --allow-root) notebooks/

# The README's test command (and CI's): lint first, then the whole suite.
test: lint browser
	$(BIN)/python -m pytest

# What tests/browser needs beside the dev extra (Playwright): Debian's chromium, installed when
# apt-get can (root); otherwise those tests are skipped, each with the reason.
browser:
	@$(call apt_install,chromium,chromium)

# Benchmarks (≈ 3 min on 2 cores). The reference rates need wrk and redis-benchmark (Debian's
# wrk and redis-tools): installed here when apt-get can, else kato bench says which are absent.
bench: venv
	@$(call apt_install,wrk redis-benchmark,wrk redis-tools)
	$(BIN)/kato bench

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

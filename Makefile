# Developer tasks for KATO. Every target that runs code sets up .venv first.
# Use another interpreter with: make PYTHON=python3.12 venv

PYTHON ?= python3
VENV = .venv
BIN = $(VENV)/bin

.PHONY: venv demo test bench lint clean

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

# The README's test command (and CI's): lint first, then the whole suite.
test: lint
	$(BIN)/python -m pytest

# Benchmarks (≈ 10 min on 2 cores). The reference rates need wrk and redis-benchmark (Debian's
# wrk and redis-tools): installed here when apt-get can, else kato bench says which are absent.
bench: venv
	@command -v wrk >/dev/null && command -v redis-benchmark >/dev/null || \
		{ command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
		  apt-get install -y -qq wrk redis-tools >/dev/null; } || \
		echo "note: wrk/redis-benchmark not installed; kato bench falls back and says so" >&2
	$(BIN)/kato bench

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

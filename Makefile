# Two commands for a fresh machine: `make demo` runs the product, `make test` runs the tests.
# Both create a local virtualenv in .venv and install everything they need into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
BROKER ?= auto

.PHONY: demo test lint bench install clean faults faults-cluster soak

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/streamer demo --broker $(BROKER)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

# The fault suite alone, with its figure lines (also part of `make test`).
faults: install
	$(BIN)/pytest -m faults -s

# Opt-in, outside `make test`: three Apache Kafka brokers, the partition leader's killed.
faults-cluster: install
	$(BIN)/pytest -m cluster -s

# A soak (not part of `make test`): live traffic through two workers under random faults.
MINUTES ?= 20
soak: install
	$(BIN)/python -m tests.faults.soak --minutes $(MINUTES)

bench: install
	$(BIN)/python -m benchmarks --broker $(BROKER) $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

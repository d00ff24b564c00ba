# qs-book
#   make book   set up .venv on first use, then build the book with the default parameters
#   make test   set up .venv on first use, then run every test (book and browser tests too)
#
# Setup is idempotent: it reruns only when requirements.lock or pyproject.toml change
# (or .venv is missing).

SHELL   := /bin/bash
PYTHON  ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.setup-stamp
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PIP     := $(BIN)/python -m pip --disable-pip-version-check
PYTEST_ARGS ?=

.PHONY: setup book test chromium clean

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements.lock
	$(PIP) install --no-deps -e .
	@touch $@

book: $(STAMP)
	$(BIN)/qsmoe book

test: $(STAMP) chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The browser test drives Debian's Chromium; Playwright never downloads a browser here.
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  echo "installing Debian chromium for the browser test"; \
	  $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium; \
	fi

clean:
	rm -rf _build

# make peers: predict every measured row with the peer tools (own venv, never the book's .venv)
# and write data/peers/predictions.csv + meta.json; qsmoe's speed is timed with the book's .venv.
PEERS_VENV := .peers-venv
PEERS_STAMP := $(PEERS_VENV)/.setup-stamp

$(PEERS_STAMP): peers/requirements.txt
	@test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip --disable-pip-version-check install -r peers/requirements.txt
	@touch $@

.PHONY: peers
peers: $(STAMP) $(PEERS_STAMP)
	$(PEERS_VENV)/bin/python peers/run.py --qsmoe-python $(BIN)/python

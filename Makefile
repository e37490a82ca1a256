# seqnb — build the book, run the tests, lint.
#   make book   build the book into _build/html (executes every chapter, book profile)
#   make test   run the whole test suite, including the headless-Chromium book check
#   make lint   ruff
# Everything runs in .venv (created with $(PYTHON) if missing). PyTorch is pinned to the
# version the project is developed with; install it first from another index if you need
# a particular build (CI installs the CPU wheel), pip then leaves it alone.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0
# extra flags for `jupyter-book build` (e.g. JB_FLAGS=--verbose)
JB_FLAGS ?=

.PHONY: book test lint venv browser clean-book

venv: $(PY)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip

# installs are re-run only when pyproject.toml changes
$(VENV)/.installed-book: pyproject.toml | $(PY)
	$(PY) -m pip install "$(TORCH)" -e ".[book]"
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PY) -m pip install "$(TORCH)" -e ".[dev]"
	touch $@ $(VENV)/.installed-book

# --all: re-execute every chapter even if its source did not change (stored results may
# have); -W --keep-going: report every warning, then fail.
book: $(VENV)/.installed-book
	$(PY) -c "from jupyter_book.cli.main import main; main()" build . --all -W --keep-going $(JB_FLAGS)
	@echo "book: open _build/html/index.html"

# Debian's chromium + chromium-driver for the browser test; installed when missing and
# running as root (elsewhere install them yourself or set SEQNB_CHROMIUM to a Chromium).
browser:
	@if [ -x /usr/bin/chromium ] || [ -n "$$SEQNB_CHROMIUM" ]; then \
	  true; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  apt-get update && apt-get install -y chromium chromium-driver; \
	else \
	  echo "make: Chromium not found; the browser test needs it: sudo apt-get install chromium chromium-driver (or set SEQNB_CHROMIUM)"; \
	fi

test: $(VENV)/.installed-dev browser
	$(PY) -m pytest

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .

clean-book:
	rm -rf _build

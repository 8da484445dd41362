# The two commands: `make demo` (the main job end to end on embedded defaults) and `make test`.
# Both install what they need on a fresh machine: Debian packages (apt-get, as root), a venv, pip packages.

PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: demo test lint pytest bench sysdeps venv clean

demo: venv
	bash scripts/demo.sh

test: sysdeps venv lint pytest

lint: venv
	$(BIN)/ruff check enarx_pkg registry tests bench scripts
	$(BIN)/mypy

pytest: venv
	$(BIN)/python -m pytest -q tests

bench: sysdeps venv
	$(BIN)/python bench/run_all.py

sysdeps:
	bash scripts/install-system-deps.sh

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

clean:
	rm -rf $(VENV) .demo .mypy_cache .ruff_cache .pytest_cache

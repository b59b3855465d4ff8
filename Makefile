# `make app` runs the main job (the app at http://127.0.0.1:7860), `make test` the tests; both create or refresh
# .venv first, and `make test` installs headless Chromium (Debian's package) for the browser test where missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: app demo test test-fast venv chromium bench mutants space-check
venv: $(STAMP)

# The package and its test extras, with requirements.txt (the pinned Space list) as constraints.
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c requirements.txt -e ".[dev]"
	touch $(STAMP)

app: $(STAMP)
	$(BIN)/python app.py

demo: $(STAMP)
	$(BIN)/python -m probe match --source examples/cat.png --target examples/shapes/blue_star.png --out out/demo

chromium:
	command -v chromium >/dev/null 2>&1 || ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium)

test: $(STAMP) chromium
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

# The fast tier (no test marked slow), for the edit-test loop and for mutation testing.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not slow"

# Mutation testing of the guard and science functions against the fast tier (tests/mutation.py).
mutants: $(STAMP)
	$(BIN)/python tests/mutation.py

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_matching.py

# Every pin of requirements.txt resolves to a CPython 3.12 manylinux wheel (the Space's Python), nothing installed.
space-check: $(STAMP)
	$(BIN)/python -m pip install --dry-run --no-deps --ignore-installed --only-binary=:all: --python-version 3.12 \
	  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
	  --platform manylinux2014_x86_64 --target .venv/space-check -r requirements.txt

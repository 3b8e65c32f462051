# skypickle: two commands for a fresh machine
#   make demo   build (release) into .venv and run the demonstration
#   make test   build, then run the Rust unit tests and the pytest suite
# Everything is installed into the project-local virtualenv from the registries.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.deps-stamp

.PHONY: demo test build venv rust-test py-test test-matrix lint fmt bench clean

$(STAMP): requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

# maturin develop installs the package (editable python/ + compiled module) into $(VENV).
build: $(STAMP)
	VIRTUAL_ENV=$(abspath $(VENV)) $(BIN)/maturin develop --release --quiet

demo: build
	$(PY) -m skypickle demo

rust-test:
	cargo test --lib --quiet

# The address-space cap turns a runaway test into a MemoryError instead of a starved machine.
py-test: build
	ulimit -S -v 8000000 && $(PY) -m pytest tests -q -p no:cacheprovider

# The other CPythons (3.9-3.13) the machine has, each in its own .venv-3.X.
test-matrix:
	SKIP_VERSION=$$($(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])') scripts/test-matrix.sh

test: rust-test py-test test-matrix

lint: $(STAMP)
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	$(BIN)/ruff check python tests benches
	$(BIN)/ruff format --check python tests benches

fmt: $(STAMP)
	cargo fmt
	$(BIN)/ruff format python tests benches

bench: build
	$(PY) benches/bench_dumps.py

clean:
	rm -rf $(VENV) .venv-3.* target dist

# skypickle: two commands for a fresh machine
#   make demo   build (release) into .venv and run the demonstration
#   make test   build, then run the Rust unit tests and the pytest suite
#   make lint   formatting, clippy, ruff, and the stubs checked against the built module
#   make spark-test  the PySpark tests alone (real jobs on local[2]; they need Java)
# Everything is installed into the project-local virtualenv from the registries.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.deps-stamp

.PHONY: demo test build venv rust-test py-test spark-test test-matrix fuzz-quick soak lint stubtest \
    fmt bench clean

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

# py-test runs these too; this target is for working on the integration. Jobs need Java
# (JAVA_HOME, or java on PATH); without it they skip, unless SKYPICKLE_REQUIRE_SPARK=1.
spark-test: build
	ulimit -S -v 8000000 && $(PY) -m pytest tests/test_spark.py -q -p no:cacheprovider -rsx

# The other CPythons (3.9-3.13) the machine has, each in its own .venv-3.X.
test-matrix:
	SKIP_VERSION=$$($(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])') scripts/test-matrix.sh

# A short coverage-guided run of the writer fuzzer, when cargo-fuzz and a nightly toolchain are
# installed (optional: `cargo test` already runs the same checks on 600 generated programs).
FUZZ_SECONDS ?= 600
HAVE_FUZZ := $(shell command -v cargo-fuzz >/dev/null 2>&1 && rustup toolchain list 2>/dev/null | grep -q nightly && echo yes)

# New inputs go to a scratch directory: the committed corpus changes only by hand.
fuzz-quick:
ifeq ($(HAVE_FUZZ),yes)
	cd fuzz && scratch=$$(mktemp -d) && \
		cargo +nightly fuzz run writer $$scratch corpus/writer -- -max_total_time=30; \
		status=$$?; rm -rf $$scratch; exit $$status
else
	@echo "fuzz-quick: cargo-fuzz or a nightly toolchain is missing, skipped (see fuzz/README.md)"
endif

test: rust-test py-test test-matrix fuzz-quick

# The long reliability run: the forged-pickle campaigns 20x longer, 100,000-iteration memory
# loops, and the writer fuzzer for FUZZ_SECONDS.
soak: build
	ulimit -S -v 8000000 && SKYPICKLE_SOAK=1 $(PY) -m pytest -q -p no:cacheprovider \
		tests/test_reliability_forged.py tests/test_reliability_threads_memory.py
ifeq ($(HAVE_FUZZ),yes)
	cd fuzz && cargo +nightly fuzz run writer corpus/writer -- -max_total_time=$(FUZZ_SECONDS)
else
	@echo "soak: cargo-fuzz or a nightly toolchain is missing, writer fuzzer skipped"
endif

# scripts/ joins once it holds Python files (ruff warns about a path with none).
RUFF_PATHS := $(strip python tests benches $(if $(wildcard scripts/*.py),scripts))

# stubtest compares _skypickle.pyi with the compiled module itself, so it needs the build.
stubtest: build
	$(PY) -m mypy.stubtest skypickle._skypickle --allowlist stubtest-allowlist.txt

lint: $(STAMP) stubtest
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	$(BIN)/ruff check $(RUFF_PATHS)
	$(BIN)/ruff format --check $(RUFF_PATHS)

fmt: $(STAMP)
	cargo fmt
	$(BIN)/ruff format $(RUFF_PATHS)

bench: build
	$(PY) benches/bench_dumps.py

clean:
	rm -rf $(VENV) .venv-3.* target dist .mypy_cache

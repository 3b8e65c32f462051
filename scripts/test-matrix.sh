#!/usr/bin/env bash
# Build skypickle for every CPython 3.9–3.13 this machine has and run the pytest suite on each.
# The default interpreter's run is `make py-test`; this covers the others. Each version gets its
# own virtualenv (.venv-3.X) and cargo target dir, so the builds do not invalidate each other.
# PySpark's jobs (tests/test_spark.py and the README's PySpark example: a JVM each, under a
# minute in all on two cores) run on the default interpreter only, in `make py-test`;
# SKYPICKLE_SPARK_ALL=1 runs them here too. The in-process tests of the Spark integration run on
# every interpreter either way.
set -euo pipefail
cd "$(dirname "$0")/.."

skip="${SKIP_VERSION:-}"
spark_jobs=0
[ "${SKYPICKLE_SPARK_ALL:-0}" = 1 ] && spark_jobs=1
found=0
failed=()
for minor in 9 10 11 12 13; do
    version="3.$minor"
    [ "$version" = "$skip" ] && continue
    py=""
    if command -v pyenv >/dev/null 2>&1; then
        for candidate in "$(pyenv root)"/versions/"$version".*/bin/python; do
            [ -x "$candidate" ] && py="$candidate"
        done
    fi
    if [ -z "$py" ] && command -v "python$version" >/dev/null 2>&1 \
        && "python$version" -c "pass" >/dev/null 2>&1; then
        py="$(command -v "python$version")"
    fi
    if [ -z "$py" ]; then
        echo "== CPython $version: not on this machine, skipped"
        continue
    fi
    found=$((found + 1))
    venv=".venv-$version"
    echo "== CPython $version ($py)"
    if [ ! -f "$venv/.deps-stamp" ] || [ requirements-dev.txt -nt "$venv/.deps-stamp" ]; then
        "$py" -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --upgrade pip
        "$venv/bin/python" -m pip install --quiet -r requirements-dev.txt
        touch "$venv/.deps-stamp"
    fi
    CARGO_TARGET_DIR="target/py$version" VIRTUAL_ENV="$PWD/$venv" \
        "$venv/bin/maturin" develop --release --quiet
    if ! (ulimit -S -v 8000000 && HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-fast}" \
        SKYPICKLE_SPARK_JOBS="$spark_jobs" \
        "$venv/bin/python" -m pytest tests -q -p no:cacheprovider); then
        failed+=("$version")
    fi
done
echo "== matrix: $found interpreter(s) tested${failed:+, failed on: ${failed[*]}}"
[ "${#failed[@]}" -eq 0 ]

"""Every ``python`` code block in README.md runs, each as a script in a fresh interpreter (so the
examples that define things in ``__main__`` and start worker processes run as a user would)."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest
from helpers import lift_address_space_limit, spark_jobs_java_home

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_readme_has_examples():
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(tmp_path, index):
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    if "pyspark" in BLOCKS[index]:
        # Under the same conditions as tests/test_spark.py's jobs (Java, the matrix's choice).
        env["JAVA_HOME"] = spark_jobs_java_home()
        env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    script = tmp_path / f"readme_example_{index}.py"
    script.write_text(BLOCKS[index])
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
        env=env,
        preexec_fn=lift_address_space_limit,
    )
    assert proc.returncode == 0, f"README example {index}:\n{BLOCKS[index]}\n{proc.stderr}"
    if "print(" in BLOCKS[index]:
        assert proc.stdout.strip(), "the example prints nothing"

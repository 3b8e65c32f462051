"""What the integration tests share: the ``__main__`` definitions every engine script starts
with, the results they must give, and how a script is run (in a fresh interpreter, as
``__main__``, reporting one JSON line)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

COMMON = """
import json
import os
import sys

OFFSET = 10


class Point:
    def __init__(self, x):
        self.x = x

    def moved(self, d):
        return Point(self.x + d)


def make_scaler(k):
    return lambda v: v * k + OFFSET


def report(**results):
    print("RESULT " + json.dumps(results))
"""

EXPECTED = {"scaled": [10, 13, 16, 19], "moved": [1, 2, 3], "isinstance": True}


def run_script(
    tmp_path, body: str, env: dict | None = None, timeout: int = 240, preexec_fn=None
) -> dict:
    script = tmp_path / "job.py"
    script.write_text(COMMON + "\n" + textwrap.dedent(body))
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp_path,
        env=full_env,
        preexec_fn=preexec_fn,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return json.loads(lines[-1][len("RESULT ") :])

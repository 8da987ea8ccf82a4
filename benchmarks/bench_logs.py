"""Time and memory of ``experiment logs X -n 2`` on a large log, through the command.

    python benchmarks/bench_logs.py [--size-mb 200] [--src OLD/src]

Runs an experiment once, grows one setting's log to ``--size-mb`` megabytes, then runs
``python -m superparams logs X -n 2`` (with ``--src``, that source tree's superparams
instead of the installed one) and prints its wall time and peak memory, as
``getrusage`` reports it for that child alone.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

EXPERIMENT = """
from superparams import Experiment

class Talks(Experiment):
    def run(self):
        print("first line")
        return {"ok": 1}
"""


def measure(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, bytes]:
    """Wall seconds, peak memory (MB) and stdout of one run of a command."""
    began = time.perf_counter()
    child = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE)
    assert child.stdout is not None
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    took = time.perf_counter() - began
    child.stdout.close()
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        sys.exit(f"{' '.join(args)} exited with {child.returncode}")
    return took, usage.ru_maxrss / 1024, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--src", help="a source tree whose superparams to measure")
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    env = dict(os.environ)
    env.pop("SUPERPARAMS_PROGRESS", None)
    if options.src:
        env["PYTHONPATH"] = str(Path(options.src).resolve())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "talks.py").write_text(textwrap.dedent(EXPERIMENT))
        command = [sys.executable, "-m", "superparams"]
        first = [*command, "talks.Talks"]
        subprocess.run(first, cwd=root, env=env, check=True, capture_output=True)
        (log,) = (root / "progress/talks/Talks/logs").iterdir()
        block = b"".join(b"%099d\n" % i for i in range(10_000))  # 1 MB
        with log.open("ab") as f:
            for _ in range(options.size_mb):
                f.write(block)
            f.write(b"the last but one\nthe last\n")
        print(f"log: {log.stat().st_size / 1e6:.0f} MB")
        for _ in range(options.repeat):
            took, peak, out = measure([*command, "logs", "talks.Talks", "-n", "2"], root, env)
            assert out == b"the last but one\nthe last\n", out[-200:]
            print(f"logs -n 2: {took:.2f} s, peak memory {peak:.0f} MB")


if __name__ == "__main__":
    main()

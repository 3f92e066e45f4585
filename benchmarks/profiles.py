"""Sampling profiles of running benchmark processes with py-spy.

``Recorder(pids, directory)`` runs ``py-spy record`` (raw collapsed stacks)
on each process (with ``--subprocesses``, so a gunicorn master brings its
workers) until :meth:`Recorder.stop`; :func:`summary` reads a file back as
the frames that take the most samples, inclusive (a frame and everything
it calls) and self (the frame alone)::

    .venv/bin/python benchmarks/profiles.py /tmp/prof/web.txt
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path


class Recorder:
    def __init__(self, targets: dict[str, int], directory: str, rate: int = 250):
        exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        Path(directory).mkdir(parents=True, exist_ok=True)
        self.files = {name: str(Path(directory) / f"{name}.txt") for name in targets}
        self.procs = [
            subprocess.Popen(
                [
                    exe,
                    "record",
                    "--pid",
                    str(pid),
                    "--subprocesses",
                    "--format",
                    "raw",
                    "--rate",
                    str(rate),
                    "--nonblocking",
                    "--gil",
                    "--output",
                    self.files[name],
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for name, pid in targets.items()
        ]

    def stop(self) -> dict[str, str]:
        for proc in self.procs:
            proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        return self.files


def _frame_name(frame: str) -> str:
    """``function (path/to/module.py:line)`` -> ``module.py:function``."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    return f"{path.rsplit('/', 1)[-1]}:{name.strip()}"


def summary(path: str, top: int = 25, idle=("wait", "select", "poll", "accept")) -> str:
    inclusive: Counter = Counter()
    own: Counter = Counter()
    total = 0
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        # Drop the process and thread names py-spy puts first.
        frames = [_frame_name(f) for f in stack.split(";") if " (" in f]
        if not frames or any(frames[-1].endswith(":" + word) for word in idle):
            continue  # a thread waiting for work is not CPU
        n = int(count)
        total += n
        for frame in dict.fromkeys(frames):
            inclusive[frame] += n
        own[frames[-1]] += n
    lines = [f"{path}: {total} busy samples"]
    lines.append("inclusive:")
    lines += [f"  {n / total:6.1%}  {frame}" for frame, n in inclusive.most_common(top)]
    lines.append("self:")
    lines += [f"  {n / total:6.1%}  {frame}" for frame, n in own.most_common(top)]
    return "\n".join(lines)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(summary(name))

"""Running the command line the way tests need it: in this process, or as a real subprocess.

In-process calls go through the same ``app.cli.main`` as ``python main.py``: argument parsing,
one-line user errors and exit codes are the real ones, without paying for a fresh interpreter
and a torch import on every call. Use a subprocess only where the process itself is under test
(signals, kill -9, what gets imported at start-up, console scripts).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class CliResult:
    """What a command left behind: the fields tests read off ``subprocess.CompletedProcess``."""

    returncode: int
    stdout: str
    stderr: str


def cli(*args: str) -> CliResult:
    """``python main.py ARGS`` run in this process, from the project folder."""
    from app.cli import main

    out, err = io.StringIO(), io.StringIO()
    # main() configures logging once per process; under pytest the root logger already has handlers,
    # so log lines reach this call's stderr through a handler of its own, formatted as main() does.
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    previous = Path.cwd()
    threads = _torch_threads()
    os.chdir(ROOT)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse's own exits (--help, bad arguments)
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        os.chdir(previous)
        root.removeHandler(handler)
        if threads is not None:  # --threads sets PyTorch's one pool per process; later tests get it back
            import torch

            torch.set_num_threads(threads)
    return CliResult(int(code or 0), out.getvalue(), err.getvalue())


def _torch_threads() -> int | None:
    if "torch" not in sys.modules:
        return None
    import torch

    return torch.get_num_threads()


def cli_process(*args: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python main.py ARGS`` as a separate process."""
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)

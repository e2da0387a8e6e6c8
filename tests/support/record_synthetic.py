"""Record a synthetic live source with :class:`Writer` until killed (for the crash-safety test).

Usage (from the repository root, with the project's interpreter)::

    python -m tests.support.record_synthetic OUTPUT [--fps 15] [--max-seconds 30]

Prints ``RECORDING <t0>`` once the first frame is queued, where ``t0`` is the ``time.time()``
that corresponds to pts 0; every frame's pts is its wall time minus ``t0``.
"""

from __future__ import annotations

import argparse
import sys
import time

from engine.runtime.frames import Frame
from engine.runtime.queues import StreamEnd
from engine.runtime.writer import Writer
from tests.support.media import pattern


def main(argv: list[str]) -> int:
    """Record until killed or until ``--max-seconds`` have passed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("output")
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--max-seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    writer = Writer(args.output, fps_hint=args.fps)
    writer.start()
    t0 = time.time()
    index = 0
    while time.time() - t0 < args.max_seconds:
        now = time.time()
        writer.input.put(Frame(index=index, pts=now - t0, wall_time=now, image=pattern(index, 160, 120)))
        if index == 0:
            sys.stdout.write(f"RECORDING {t0!r}\n")
            sys.stdout.flush()
        index += 1
        time.sleep(max(0.0, t0 + index / args.fps - time.time()))
    writer.input.put(StreamEnd("eof"))
    return 0 if writer.join(10) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

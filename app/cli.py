"""Command-line entry: builds the subcommand parser and turns user errors into one line."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import typing
from collections.abc import Sequence

from engine.errors import UserError

# Subcommand modules under app.commands, in the order `--help` lists them.
COMMANDS = ("detect", "info", "synth", "train", "calibrate", "eval", "run", "monitor", "gui", "export", "bench")

logger = logging.getLogger("dynastream")


class _Parser(argparse.ArgumentParser):
    """argparse whose bad-input message is one ``error:`` line, like every other user error."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dynastream", description="Real-time object detection on video with a dynamic detector."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"app.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"app.commands.{name}":
                continue  # command not part of this build
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:
        # Long jobs report progress through these; the runtime's per-connection chatter stays quiet.
        for name in ("engine.train", "engine.runtime.capture"):
            logging.getLogger(name).setLevel(logging.INFO)
    if args.command is None:
        if "gui" in parser._subparsers._group_actions[0].choices:  # no subcommand: open the GUI
            args = parser.parse_args(["gui", *(argv or [])])
        else:
            parser.print_help()
            return 0
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

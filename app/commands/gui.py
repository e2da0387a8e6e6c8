"""`gui`: the desktop window (also what `python main.py` opens with no command)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from app.commands.common import DEFAULT_VIDEO, add_model_arguments, check_positive, finite_float, model_options
from engine.errors import UserError
from engine.model.backend_names import check_backend_available

logger = logging.getLogger(__name__)

#: Qt platform plugins that draw without a window system (no DISPLAY needed).
HEADLESS_PLATFORMS = ("offscreen", "minimal", "vnc", "eglfs", "linuxfb")
#: Top-level keys that only a cameras.yaml has (architecture configs have neither).
CAMERA_CONFIG_KEYS = frozenset({"cameras", "budget"})


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "gui", help="open the desktop window (the default command)",
        epilog="--config cameras.yaml (the monitor command's file) opens a grid of its cameras instead, "
               "with the model and budget it names; --target-fps then sets the total over all cameras.")
    parser.add_argument("--source", help="file, camera index, rtsp:// or http(s):// URL "
                                          "(default: the bundled demo video, looped)")
    add_model_arguments(parser)
    parser.add_argument("--target-fps", type=finite_float, help="processing rate to hold at start")
    parser.add_argument("--no-loop", action="store_true", help="do not restart video files when they end")
    parser.add_argument("--screenshot", help="save a PNG of the window after --quit-after-frames frames, "
                                             "then quit")
    parser.add_argument("--quit-after-frames", type=int, help="quit after this many processed frames "
                                                              "(with --screenshot: default 30)")
    parser.add_argument("--summary", action="store_true", help="print a JSON summary of the run on exit "
                                                               "(as `run` does)")
    parser.set_defaults(func=run)


def display_available() -> bool:
    """Whether Qt can open a window here (always true outside Linux and the BSDs)."""
    if not sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        return True
    if os.environ.get("QT_QPA_PLATFORM", "").split(":")[0] in HEADLESS_PLATFORMS:
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def run(args: argparse.Namespace) -> int:
    if not display_available():
        raise UserError("no display found (DISPLAY and WAYLAND_DISPLAY are unset); "
                        "for headless use try `python main.py run`")
    check_positive("--target-fps", args.target_fps)
    check_positive("--quit-after-frames", args.quit_after_frames)
    check_backend_available(args.backend)
    # Qt is imported only now: the other commands, and machines without Qt, never load it.
    from app.gui.application import QuitRequest

    quit_request = None
    if args.screenshot or args.quit_after_frames:
        quit_request = QuitRequest(args.quit_after_frames or 30, Path(args.screenshot) if args.screenshot else None)
    if args.config is not None and is_camera_config(args.config):
        return _run_cameras(args, quit_request)
    from app.gui.application import run_gui
    from app.gui.session import SessionOptions

    model = model_options(args)
    options = SessionOptions(source=args.source if args.source is not None else str(DEFAULT_VIDEO), model=model,
                             target_fps=args.target_fps, loop=not args.no_loop)
    return run_gui(options, quit_request, summary=args.summary)


def is_camera_config(path: str) -> bool:
    """Whether ``--config`` names a cameras.yaml rather than an architecture.

    Only a cameras.yaml has a top-level ``cameras`` or ``budget`` key (one with ``budget`` but no
    cameras then fails with the monitor config's own message); names of our architectures
    (``dy-yolov7``) are not files. A file that is not valid YAML is reported here in one line,
    as either kind would be.
    """
    from engine.config import load_yaml  # yaml: kept out of the other commands' start-up

    if not Path(path).is_file():
        return False
    return not CAMERA_CONFIG_KEYS.isdisjoint(load_yaml(path))


def _run_cameras(args: argparse.Namespace, quit_request) -> int:
    from app.gui.application import run_camera_gui
    from app.gui.multi_session import CameraOptions
    from engine.runtime.monitor_config import load_monitor_config

    for option, given in (("--source", args.source is not None), ("--weights", args.weights is not None),
                          ("--no-loop", args.no_loop)):
        if given:
            raise UserError(f"{option} does not go with a cameras.yaml: set it in {args.config} "
                            f"(sources and loop per camera, the model under 'model')")
    options = CameraOptions(load_monitor_config(args.config), target_fps=args.target_fps)
    return run_camera_gui(options, quit_request, summary=args.summary)

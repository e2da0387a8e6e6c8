"""Loads a model off the GUI thread, so the window stays responsive for the seconds it takes."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from PyQt6.QtCore import QObject, pyqtSignal

from engine.errors import UserError
from engine.model.calibration import Calibration
from engine.model.loading import ModelOptions

logger = logging.getLogger(__name__)


#: What the GUI loads: the same model options as every command.
ModelChoice = ModelOptions


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to run: the predictor (used only by the engine thread) and its metadata."""

    choice: ModelChoice
    predictor: Any  # engine.model.predictor.Predictor; not imported here because it imports torch
    class_names: tuple[str, ...]
    calibration: Calibration | None
    path: str


class ModelLoader(QObject):
    """Signals:
        loaded(LoadedModel): the last requested model is ready.
        failed(message): it could not be loaded; ``message`` is meant for the user.
    """

    loaded = pyqtSignal(object)
    failed = pyqtSignal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._request = 0
        self._lock = threading.Lock()

    def load(self, choice: ModelChoice) -> None:
        """Start loading; a newer request makes the result of an older one be ignored."""
        with self._lock:
            self._request += 1
            request = self._request
        # A plain daemon thread rather than a QThread: a load cannot be interrupted, and one
        # still running when the window closes must not hold up (or abort) the exit.
        thread = threading.Thread(target=self._run, args=(choice, request), name="gui-model-loader", daemon=True)
        thread.start()

    def _run(self, choice: ModelChoice, request: int) -> None:
        try:
            model = _load(choice)
        except UserError as exc:
            self._deliver(request, self.failed, str(exc))
        except Exception as exc:  # shown in the window; the traceback goes to the log
            logger.exception("loading %s failed", choice.weights or "the bundled model")
            self._deliver(request, self.failed, f"{type(exc).__name__}: {exc}")
        else:
            self._deliver(request, self.loaded, model)

    def _deliver(self, request: int, signal: Any, payload: object) -> None:
        with self._lock:
            if request != self._request:
                return
        try:
            signal.emit(payload)  # queued to the GUI thread, where the receivers live
        except RuntimeError:
            logger.debug("model loaded after the window closed; dropped")


def _load(choice: ModelChoice) -> LoadedModel:
    from app.commands.common import default_weights, load_model

    loaded = load_model(choice, engine=True)
    path = choice.weights or str(default_weights())
    return LoadedModel(choice, loaded.predictor, loaded.class_names, loaded.calibration, path)

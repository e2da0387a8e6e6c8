"""The inference backends by name, and which of them this machine has, without importing any.

Command lines are checked against these before a model loads (a refused backend costs no
seconds of work), so this module stays free of torch and of the runtimes themselves.
"""

from __future__ import annotations

import importlib.util

from engine.errors import UserError

BACKEND_NAMES = ("auto", "torch", "onnxruntime", "openvino")
# The CPU runtimes that run the exported graphs; ``auto`` measures them against each other.
GRAPH_BACKENDS = ("onnxruntime", "openvino")


def check_backend_name(name: str) -> None:
    """Raises :class:`UserError` unless ``name`` is one of :data:`BACKEND_NAMES`."""
    if name not in BACKEND_NAMES:
        raise UserError(f"unknown backend {name!r} (choose one of: {', '.join(BACKEND_NAMES)})")


def available_graph_backends() -> tuple[str, ...]:
    """The graph runtimes installed here (ONNX Runtime always; OpenVINO when importable)."""
    return tuple(name for name in GRAPH_BACKENDS if importlib.util.find_spec(name) is not None)


def check_backend_available(name: str) -> None:
    """Raises :class:`UserError` unless ``name`` is a backend name this machine can run.

    ``auto`` and ``torch`` always can; a graph runtime needs its package installed. Whether the
    model exports to the graph runtimes is known only once it is loaded (see
    :func:`engine.model.backends.make_backend`).
    """
    check_backend_name(name)
    installed = available_graph_backends()
    if name in GRAPH_BACKENDS and name not in installed:
        # The graph runtimes' Python packages carry the backends' names.
        raise UserError(f"backend {name!r} is not installed here (pip install {name}; "
                        f"available: {', '.join(('auto', 'torch', *installed))})")

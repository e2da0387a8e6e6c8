"""Where the files that ship with DynaStream are: the bundled model, the demo clip, the model configs.

In a checkout they are the top-level ``assets/`` and ``configs/`` folders. An installed package
carries the same folders as ``engine/_bundled/assets`` and ``engine/_bundled/configs``
(``pyproject.toml`` maps them there, with only the files the commands' defaults need). Every
default path is resolved here, so the commands behave alike in both.

Only a package installed as plain files is supported (not a zip import): the model, the clip and
the configs are opened by path (safetensors, FFmpeg, YAML), and the model's ONNX export is cached
by path too (:func:`is_installed`).
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_INSTALLED = _PACKAGE / "_bundled"


def _folder(name: str) -> Path:
    """``name`` (``assets`` or ``configs``) in the installed package, else in the checkout."""
    installed = _INSTALLED / name
    return installed if installed.is_dir() else _PACKAGE.parent / name


ASSETS = _folder("assets")
MODEL_CONFIGS = _folder("configs") / "models"
#: The bundled model: what every command loads when no ``--weights`` is given.
DEFAULT_WEIGHTS = ASSETS / "dy-yolov7-tiny.safetensors"
#: The demo clip: the default source of ``run``, ``gui`` and ``bench``'s pipeline rates.
DEFAULT_VIDEO = ASSETS / "demo.mp4"


def model_config(name: str) -> Path:
    """The architecture file of one of our model names (``dy-yolov7-tiny``), existing or not."""
    return MODEL_CONFIGS / f"{name}.yaml"


def model_config_names() -> list[str]:
    """Our model names, sorted: the stems of ``configs/models/*.yaml``."""
    return sorted(path.stem for path in MODEL_CONFIGS.glob("*.yaml"))


def is_installed(path: str | Path) -> bool:
    """True for a file that came with an installed package (under ``engine/_bundled``).

    Nothing is written next to such a file: an installer owns that folder, and removing the
    package would leave the writes behind.
    """
    return Path(path).resolve().is_relative_to(_INSTALLED)

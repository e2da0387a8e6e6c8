"""DynaStream as a user installs it: the wheel carries what the commands default to, and they run
from any folder with nothing written into the installed package."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Never copied into the build tree: environments, outputs, caches. The ONNX cache is left out here and a
# small stand-in planted instead, to show the wheel skips it (the real one holds hundreds of megabytes).
NOT_SOURCES = (".git", ".venv", "runs", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache",
               "*.onnx-cache")
BUNDLED = {
    "engine/_bundled/assets/dy-yolov7-tiny.safetensors",
    "engine/_bundled/assets/demo.mp4",
    *(f"engine/_bundled/configs/models/{p.name}" for p in (ROOT / "configs" / "models").glob("*.yaml")),
}


def test_pyproject_lists_every_code_package():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for top in ("app", "engine")
             for p in (ROOT / top).rglob("__init__.py")}
    assert {name for name in listed if not name.startswith("engine._bundled.")} == found


def test_installed_model_caches_its_onnx_export_in_the_user_cache(tmp_path, monkeypatch):
    from engine import bundled
    from engine.model import onnx_export

    monkeypatch.setattr(bundled, "_INSTALLED", tmp_path / "site" / "engine" / "_bundled")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    installed = tmp_path / "site" / "engine" / "_bundled" / "assets" / "model.safetensors"
    mine = tmp_path / "mine" / "model.safetensors"
    assert onnx_export.cache_root_for(installed) == tmp_path / "cache" / "dynastream" / "onnx-cache" / installed.name
    assert onnx_export.cache_root_for(mine) == mine.with_name("model.safetensors.onnx-cache")


def _build_wheel(tmp: Path) -> Path:
    """The wheel of a copy of the working tree (the checkout itself gets no build output)."""
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(*NOT_SOURCES))
    planted = src / "assets" / "dy-yolov7-tiny.safetensors.onnx-cache" / "entry" / "stage1.onnx"
    planted.parent.mkdir(parents=True)
    planted.write_bytes(b"stand-in")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w",
                             str(tmp / "dist"), str(src)], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    for noise in ("Warning", "deprecated"):  # e.g. setuptools' licence and package-data warnings
        assert noise not in result.stdout + result.stderr
    return next((tmp / "dist").glob("dynastream-*.whl"))


@pytest.mark.slow
def test_wheel_installed_elsewhere_runs_the_default_commands(tmp_path):
    wheel = _build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    assert names >= BUNDLED
    assert not [n for n in names if n.startswith("engine/_bundled/") and n not in BUNDLED]
    assert not [n for n in names if ".onnx-cache" in n or n.startswith("tests/")]

    site, work, home = tmp_path / "site", tmp_path / "work", tmp_path / "home"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=120)
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "PYTHONPATH")}
    env.update(PYTHONPATH=str(site), HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"),
               XDG_CONFIG_HOME=str(home / ".config"), QT_QPA_PLATFORM="offscreen")

    def dynastream(*commands: tuple[str, ...]) -> list[str]:
        """The installed command line run once per argument list, side by side: their standard outputs."""
        runs = [subprocess.Popen([str(site / "bin" / "dynastream"), *args], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, cwd=work, env=env) for args in commands]
        outputs = [run.communicate(timeout=180) for run in runs]
        for args, run, (_, err) in zip(commands, runs, outputs):
            assert run.returncode == 0, f"dynastream {' '.join(args)}: {err}"
        return [out for out, _ in outputs]

    imported = subprocess.run([sys.executable, "-c", "import app, engine; print(engine.__file__, app.__file__)"],
                              capture_output=True, text=True, cwd=work, env=env, check=True).stdout.split()
    assert all(Path(path).is_relative_to(site) for path in imported), imported

    fast = ("--backend", "onnxruntime", "--threads", "1")
    info, published, run = dynastream(("info",), ("info", "--config", "dy-yolov7"), ("run", "--max-frames", "5", *fast))
    info, published, summary = json.loads(info), json.loads(published), json.loads(run.strip().splitlines()[-1])
    assert info["name"] == "dy-yolov7-tiny" and info["num_classes"] == 8
    assert published["name"] == "dy-yolov7" and published["num_classes"] == 80
    assert summary["frames_processed"] == 5
    assert Path(summary["source"]) == site / "engine" / "_bundled" / "assets" / "demo.mp4"
    dynastream(("gui", "--quit-after-frames", "3", *fast))  # reuses the export that run cached

    # The export went to the user cache; nothing was written into the package or the working folder.
    assert list((home / ".cache" / "dynastream" / "onnx-cache" / "dy-yolov7-tiny.safetensors").glob("*/stage1.onnx"))
    assert sorted(p.name for p in (site / "engine" / "_bundled" / "assets").iterdir()) == [
        "demo.mp4", "dy-yolov7-tiny.safetensors"]
    assert not list(work.iterdir())

"""eval for a person: a readable table beside the JSON line, and a plot that lands somewhere writable."""

from __future__ import annotations

import json
import os
from pathlib import Path

from app.commands.eval import _dataset_table, default_plot_path

ROOT = Path(__file__).resolve().parents[2]


def test_table_shows_exits_and_router_against_random():
    result = json.loads((ROOT / "assets" / "heldout-eval.json").read_text())
    lines = _dataset_table(result).splitlines()
    assert lines[0].startswith("1000 images") and "rho" in lines[0]
    router50 = next(line for line in lines if line.startswith("router 50%"))
    random50 = next(line for line in lines if line.startswith("random 50%"))
    assert router50.split()[-1] == "82%" and random50.split()[-1] == "52%"


def test_read_only_weights_folder_sends_the_plot_to_runs(tmp_path, monkeypatch):
    weights = tmp_path / "m.safetensors"
    assert default_plot_path(weights) == tmp_path / "m-tradeoff.png"
    # A read-only folder as a non-root user sees it (root may write anywhere, so the check is simulated).
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != tmp_path)
    assert default_plot_path(weights) == Path("runs/eval/m-tradeoff.png")

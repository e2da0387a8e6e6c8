"""What train says before and after the work: missing data named with its remedy, next steps at the end."""

from __future__ import annotations

from pathlib import Path

from app.cli import main
from app.commands.train import next_steps

ROOT = Path(__file__).resolve().parents[2]


def test_missing_data_is_named_with_the_command_that_makes_it(tmp_path, capsys):
    missing = tmp_path / "nowhere" / "data.yaml"
    code = main(["train", "--config", str(ROOT / "configs/train/smoke.yaml"), "--set", f"data.path={missing}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "training data not found" in err[0] and f"synth --out {missing.parent}" in err[0]


def test_next_steps_name_the_model_and_the_data():
    text = next_steps("runs/train/x/model.safetensors", "d/data.yaml")
    assert "eval --weights runs/train/x/model.safetensors --data d/data.yaml" in text
    assert "run --weights runs/train/x/model.safetensors" in text

"""calibrate never rewrites the bundled model unasked, and never stores exit costs that make no sense."""

from __future__ import annotations

import hashlib

from app.cli import main
from app.commands.calibrate import sane_costs
from app.commands.common import DEFAULT_WEIGHTS
from engine.model.calibration import Calibration


def test_bundled_model_is_not_rewritten_without_out_or_in_place(tmp_path, capsys):
    before = hashlib.sha256(DEFAULT_WEIGHTS.read_bytes()).hexdigest()
    assert main(["calibrate", "--data", str(tmp_path / "data.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "rewrite the bundled model" in err[0] and "--out" in err[0]
    assert hashlib.sha256(DEFAULT_WEIGHTS.read_bytes()).hexdigest() == before


def test_costs_that_make_no_sense_are_dropped(capsys):
    fractions, thresholds = (0.0, 0.5, 1.0), (0.0, 0.4, 1.0)
    good = Calibration(fractions, thresholds, exit1_ms=7.0, exit2_ms=12.0)
    assert sane_costs(good) == good and capsys.readouterr().err == ""
    busy = sane_costs(Calibration(fractions, thresholds, exit1_ms=189.0, exit2_ms=147.0))
    assert (busy.exit1_ms, busy.exit2_ms, busy.thresholds) == (0.0, 0.0, thresholds)
    assert "make no sense" in capsys.readouterr().err

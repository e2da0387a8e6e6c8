"""Shared fixtures: paths to the reference fixtures beside the checkout (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "reference"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not (SHARED / "parity" / "dy-yolov7-step2-w0.25.pt").exists():
        pytest.skip("reference fixtures (../shared/reference) not present")
    return SHARED

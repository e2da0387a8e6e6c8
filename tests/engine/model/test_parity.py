"""Our network is the reference network: both exits and the router score match the fixtures."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine import load_model
from engine.model.build import build_dynamic_detector
from engine.model.reference import arch_from_reference_yaml, reference_key_map
from tests.engine.model.helpers import cell_major

BOX_TOL = 0.01
PROB_TOL = 1e-4
SCORE_TOL = 1e-5


def _check(model, io) -> None:
    x = torch.from_numpy(io["input"])
    score = model.router_score(x)
    assert abs(score.item() - float(io["score"].reshape(-1)[0])) < SCORE_TOL
    for exit_id, key in ((1, "easy"), (2, "hard")):
        ours = model.predict_exit(x, exit_id).numpy()
        ref = cell_major(io[key], x.shape[2:], model.first.head)
        assert ours.shape == ref.shape
        assert np.abs(ours[..., :4] - ref[..., :4]).max() < BOX_TOL, f"exit {exit_id} boxes"
        assert np.abs(ours[..., 4:] - ref[..., 4:]).max() < PROB_TOL, f"exit {exit_id} probabilities"


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("with_config", [False, True])
def test_reference_fixture_parity(reference_dir, fused, with_config):
    parity = reference_dir / "parity"
    config = parity / "cfg_dy-yolov7-step2_w0.25.yaml" if with_config else None
    model = load_model(parity / "dy-yolov7-step2-w0.25.pt", config).model
    if fused:
        assert model.fuse() is model
    _check(model, np.load(parity / "dy-yolov7-step2-w0.25-io.npz"))


def test_full_size_manifest_maps_one_to_one(reference_dir):
    manifest = json.loads((reference_dir / "parity" / "dy-yolov7-step2-manifest.json").read_text())["full"]
    reference = {name: tuple(shape) for name, shape in manifest["state_dict"]}
    assert len(reference) == 1146
    arch = arch_from_reference_yaml(reference_dir / "configs" / "dy-yolov7-step2.yaml")
    with torch.device("meta"):
        model = build_dynamic_detector(arch)
    mapping = reference_key_map(model, arch)
    ours = model.state_dict()
    assert set(mapping) == set(reference)
    assert set(mapping.values()) == set(ours)
    for ref_name, our_name in mapping.items():
        if ref_name.endswith(("anchors", "anchor_grid")):
            assert int(np.prod(reference[ref_name])) == ours[our_name].numel()
        else:
            assert reference[ref_name] == tuple(ours[our_name].shape), ref_name
    assert (
        sum(
            int(np.prod(s))
            for n, s in manifest["state_dict"]
            if not n.endswith(("running_mean", "running_var", "num_batches_tracked", "anchors", "anchor_grid"))
        )
        == manifest["params"]
    )


@pytest.mark.parametrize(
    "name, expected",
    [
        ("dy-yolov7-step1", "dy-yolov7"),
        ("dy-yolov7-step2", "dy-yolov7"),
        ("dy-yolov7x-step2", "dy-yolov7x"),
        ("dy-yolov7-w6-step2", "dy-yolov7-w6"),
    ],
)
def test_reference_yaml_is_recognised(reference_dir, name, expected):
    arch = arch_from_reference_yaml(reference_dir / "configs" / f"{name}.yaml")
    assert arch.name == expected
    assert arch.num_classes == 80

"""Dy-Faster R-CNN is an assembly of torchvision's parts: with the composite link zeroed and
one torchvision Faster R-CNN's weights in both detectors, each exit is that Faster R-CNN."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

from engine.errors import ConfigError
from engine.model.rcnn.build import build_dy_faster_rcnn
from engine.model.rcnn.detector import DyFasterRCNN
from engine.model.rcnn.resnet import ResNetBody, stage_channels
from engine.model.rcnn.spec import DyRCNNSpec, RCNNSpec

NUM_CLASSES = 4
HEIGHT, WIDTH = 96, 128


def torchvision_reference(seed: int = 0) -> FasterRCNN:
    torch.manual_seed(seed)
    backbone = resnet_fpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=5)
    # min_size/max_size that leave a 96 x 128 input at its size, as our letterboxed inputs are.
    model = FasterRCNN(backbone, num_classes=NUM_CLASSES + 1, box_score_thresh=0.0, min_size=HEIGHT,
                       max_size=WIDTH)
    with torch.no_grad():  # frozen batch-norm starts as the identity: give it real statistics
        for name, buffer in model.named_buffers():
            if name.endswith(("running_mean", "bias")):
                buffer.normal_(0.0, 0.1)
            elif name.endswith(("running_var", "weight")):
                buffer.uniform_(0.5, 1.5)
    return model.eval()


def dynamic_with(state: dict) -> DyFasterRCNN:
    detector = RCNNSpec(depth=18, score_threshold=0.0)
    model = build_dy_faster_rcnn(DyRCNNSpec(num_classes=NUM_CLASSES, input_size=WIDTH, first=detector,
                                            second=detector))
    model.first.load_state_dict(state)
    model.second.load_state_dict(state)
    with torch.no_grad():
        for parameter in model.link.parameters():
            parameter.zero_()
    return model.eval()


def as_rows(detections: dict) -> torch.Tensor:
    """A torchvision detection dict in our ``[K, 6]`` form (classes from 0)."""
    return torch.cat([detections["boxes"], detections["scores"][:, None], detections["labels"][:, None] - 1.0], 1)


@torch.no_grad()
def test_each_exit_is_the_plain_torchvision_faster_rcnn():
    reference = torchvision_reference()
    model = dynamic_with(reference.state_dict())
    torch.manual_seed(1)
    images = torch.rand(2, 3, HEIGHT, WIDTH)
    expected = [as_rows(d) for d in reference(list(images))]
    s1 = model.stage1(images)
    assert s1.scores.shape == (2,) and ((s1.scores >= 0) & (s1.scores <= 1)).all()
    for exit_output in (model.exit1(s1), model.exit2(s1)):
        assert len(exit_output) == 2
        for got, want in zip(exit_output, expected):
            assert len(want) > 0
            assert torch.equal(got, want)


@torch.no_grad()
def test_routing_a_subset_gives_the_same_detections_as_the_whole_batch():
    model = dynamic_with(torchvision_reference().state_dict())
    images = torch.rand(3, 3, HEIGHT, WIDTH)
    s1 = model.stage1(images)
    whole = model.exit2(s1)
    part = model.exit2(s1.select(torch.tensor([2, 0])))
    assert torch.equal(part[0], whole[2]) and torch.equal(part[1], whole[0])


@torch.no_grad()
def test_a_live_link_changes_only_exit_2():
    reference = torchvision_reference()
    model = dynamic_with(reference.state_dict())
    torch.nn.init.normal_(model.link.projections["c3"].weight, std=0.5)
    images = torch.rand(1, 3, HEIGHT, WIDTH)
    expected = as_rows(reference(list(images))[0])
    s1 = model.stage1(images)
    assert torch.equal(model.exit1(s1)[0], expected)
    second = model.exit2(s1)[0]
    assert second.shape != expected.shape or not torch.equal(second, expected)


@torch.no_grad()
def test_fused_trunks_give_the_same_features():
    model = dynamic_with(torchvision_reference().state_dict())
    torch.nn.init.normal_(model.link.projections["c4"].weight, std=0.1)
    images = torch.rand(1, 3, HEIGHT, WIDTH)
    s1 = model.stage1(images)
    before = (s1.scores, s1.levels, model.second_levels(s1))
    model.fuse()
    assert not any("BatchNorm" in type(m).__name__ for m in model.modules())
    s1 = model.stage1(images)
    torch.testing.assert_close(s1.scores, before[0], atol=1e-5, rtol=1e-4)
    for got, want in ((s1.levels, before[1]), (model.second_levels(s1), before[2])):
        for level in want:
            # float32 sums reordered by folding: compare against the level's own scale
            assert (got[level] - want[level]).abs().max() <= 1e-5 * want[level].abs().max(), level
    assert len(model.exit2(s1)[0]) > 0


def test_training_gives_both_loss_dicts_and_router_scores():
    model = dynamic_with(torchvision_reference().state_dict()).train()
    images = torch.rand(2, 3, HEIGHT, WIDTH)
    targets = [{"boxes": torch.tensor([[10.0, 10.0, 50.0, 60.0]]), "labels": torch.tensor([2])},
               {"boxes": torch.tensor([[20.0, 5.0, 90.0, 40.0], [0.0, 0.0, 30.0, 30.0]]),
                "labels": torch.tensor([1, 4])}]
    first, second, scores = model.forward_training(images, targets)
    expected = {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg"}
    assert set(first) == set(second) == expected
    total = sum(first.values()) + sum(second.values())
    total.backward()
    assert model.second.backbone.body.layer4[0].conv1.weight.grad is not None
    assert model.link.projections["c5"].weight.grad is not None
    assert scores.shape == (2,)


def test_a_narrow_trunk_keeps_torchvisions_structure():
    body = ResNetBody(18, width=16, norm="batch")
    assert body.channels == stage_channels(18, 16) == {"c2": 16, "c3": 32, "c4": 64, "c5": 128}
    features = body(torch.rand(1, 3, 64, 64))
    assert {k: tuple(v.shape[1:]) for k, v in features.items()} == {
        "c2": (16, 16, 16), "c3": (32, 8, 8), "c4": (64, 4, 4), "c5": (128, 2, 2)}
    import torchvision

    ours = {k: v.shape for k, v in ResNetBody(50, norm="batch").state_dict().items()}
    theirs = {k: v.shape for k, v in torchvision.models.resnet50().state_dict().items() if not k.startswith("fc.")}
    assert ours == theirs


def test_spec_checks():
    with pytest.raises(ValueError, match="multiple of 32"):
        DyRCNNSpec(num_classes=3, input_size=100)
    with pytest.raises(ValueError, match="class names"):
        DyRCNNSpec(num_classes=3, class_names=("a",))
    with pytest.raises(ValueError, match="family"):
        DyRCNNSpec(family="dy-yolov7")


def test_shipped_configs_load_and_reject_unknown_keys(tmp_path):
    from engine.bundled import model_config
    from engine.model.checkpoint import arch_from_config

    small = arch_from_config(model_config("dy-faster-rcnn-r18"))
    assert isinstance(small, DyRCNNSpec) and small.first.width == 32 and small.second.norm == "batch"
    large = arch_from_config(model_config("dy-faster-rcnn-r50"))
    assert large.first.depth == 50 and large.first.norm == "frozen"
    bad = tmp_path / "bad.yaml"
    bad.write_text("family: dy-faster-rcnn\nfirst: {depth: 18, widht: 32}\n")
    with pytest.raises(ConfigError, match=r"first\.widht: unknown key"):
        arch_from_config(bad)
    bad.write_text("family: dy-detr\n")
    with pytest.raises(ConfigError, match="unknown model family"):
        arch_from_config(bad)


def test_model_file_round_trip(tmp_path):
    from engine.model.checkpoint import load_model, save_model
    from engine.model.families import new_model
    from engine.model.variants import tiny_rcnn_variant

    torch.manual_seed(0)
    original = new_model(replace(tiny_rcnn_variant(), num_classes=2, class_names=("cat", "dog")))
    model = original.model.eval()
    restored = load_model(save_model(tmp_path / "rcnn.safetensors", original))
    assert restored.spec == original.spec and restored.calibration is None
    loaded = restored.model
    assert isinstance(loaded, DyFasterRCNN) and loaded.class_names == ("cat", "dog")
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded.stage1(x).scores, model.stage1(x).scores)
        for got, want in zip(loaded.exit2(loaded.stage1(x)), model.exit2(model.stage1(x))):
            assert torch.equal(got, want)
    full = tmp_path / "rcnn.safetensors"
    half = load_model(save_model(tmp_path / "half.safetensors", original, half=True)).model
    assert (tmp_path / "half.safetensors").stat().st_size < 0.6 * full.stat().st_size
    assert all(p.dtype == torch.float32 for p in half.parameters())
    with torch.no_grad():
        torch.testing.assert_close(half.stage1(x).scores, model.stage1(x).scores, atol=2e-3, rtol=0)


def test_both_detectors_start_from_a_torchvision_checkpoint_file(tmp_path):
    import torchvision

    from engine.errors import CheckpointError
    from engine.model.rcnn.torchvision_init import init_from_torchvision

    reference = torchvision_reference(seed=3)
    detector_file = tmp_path / "fasterrcnn.pth"
    torch.save(reference.state_dict(), detector_file)
    model = dynamic_with(torchvision_reference(seed=4).state_dict())
    first, second = init_from_torchvision(model, detector_file)
    assert first.loaded == second.loaded == len(reference.state_dict()) and not first.skipped_shape
    for key, value in reference.state_dict().items():
        assert torch.equal(model.second.state_dict()[key], value)

    classifier_file = tmp_path / "resnet18.pth"  # a plain ImageNet-style classifier, wrapped
    classifier = torchvision.models.resnet18(weights=None)
    torch.save({"state_dict": classifier.state_dict()}, classifier_file)
    first, _ = init_from_torchvision(model, classifier_file)
    assert torch.equal(model.first.backbone.body.layer4[1].conv2.weight, classifier.layer4[1].conv2.weight)
    assert any(key.startswith("rpn.") for key in first.missing)

    other_classes = FasterRCNN(resnet_fpn_backbone(backbone_name="resnet18", weights=None), num_classes=91)
    torch.save(other_classes.state_dict(), detector_file)
    first, _ = init_from_torchvision(model, detector_file)
    assert set(first.skipped_shape) == {"roi_heads.box_predictor.cls_score.weight",
                                        "roi_heads.box_predictor.cls_score.bias",
                                        "roi_heads.box_predictor.bbox_pred.weight",
                                        "roi_heads.box_predictor.bbox_pred.bias"}

    (tmp_path / "notes.pth").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match=r"notes\.pth"):
        init_from_torchvision(model, tmp_path / "notes.pth")
    with pytest.raises(CheckpointError, match="no such file"):
        init_from_torchvision(model, tmp_path / "missing.pth")


@torch.no_grad()
def test_exit_1_costs_what_the_plain_faster_rcnn_costs_plus_the_router():
    from torch.utils.flop_counter import FlopCounterMode

    from engine.model.complexity import exit_gflops

    reference = torchvision_reference()
    model = dynamic_with(reference.state_dict())
    counter = FlopCounterMode(display=False)
    with counter:
        reference([torch.zeros(3, HEIGHT, WIDTH)])  # exit_gflops counts on a zero image too
    plain = counter.get_total_flops() / 1e9
    router = FlopCounterMode(display=False)
    s1 = model.stage1(torch.zeros(1, 3, HEIGHT, WIDTH))
    with router:
        model.router(s1.stages)
    gflops = exit_gflops(model, HEIGHT, WIDTH)
    assert gflops["exit1"] == pytest.approx(plain + router.get_total_flops() / 1e9, rel=1e-9)
    # Exit 2 adds backbone 2, the link and detector 2's heads (not backbone 1 again).
    assert gflops["exit1"] < gflops["exit2"] < 2 * gflops["exit1"]

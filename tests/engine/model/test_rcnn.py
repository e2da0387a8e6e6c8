"""Dy-Faster R-CNN is an assembly of torchvision's parts: with the composite link zeroed and
one torchvision Faster R-CNN's weights in both detectors, each exit is that Faster R-CNN."""

from __future__ import annotations

import pytest
import torch
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

from engine.model.rcnn.detector import DyFasterRCNN, DyRCNNSpec, RCNNSpec

NUM_CLASSES = 4
SIZES = {"min_size": 96, "max_size": 128}


def torchvision_reference(seed: int = 0) -> FasterRCNN:
    torch.manual_seed(seed)
    backbone = resnet_fpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=5)
    model = FasterRCNN(backbone, num_classes=NUM_CLASSES + 1, box_score_thresh=0.0, **SIZES)
    with torch.no_grad():  # frozen batch-norm starts as the identity: give it real statistics
        for name, buffer in model.named_buffers():
            if name.endswith(("running_mean", "bias")):
                buffer.normal_(0.0, 0.1)
            elif name.endswith(("running_var", "weight")):
                buffer.uniform_(0.5, 1.5)
    return model.eval()


def dynamic_with(state: dict) -> DyFasterRCNN:
    detector = RCNNSpec(num_classes=NUM_CLASSES, depth=18, score_threshold=0.0)
    model = DyFasterRCNN(DyRCNNSpec(detector, detector, **SIZES))
    model.first.load_state_dict(state)
    model.second.load_state_dict(state)
    with torch.no_grad():
        for parameter in model.link.parameters():
            parameter.zero_()
    return model.eval()


@torch.no_grad()
def test_each_exit_is_the_plain_torchvision_faster_rcnn():
    reference = torchvision_reference()
    model = dynamic_with(reference.state_dict())
    torch.manual_seed(1)
    images = [torch.rand(3, 100, 120), torch.rand(3, 90, 64)]
    expected = reference(images)
    s1, _ = model.stage1(images)
    assert s1.scores.shape == (2,) and ((s1.scores >= 0) & (s1.scores <= 1)).all()
    for exit_output in (model.exit1(s1), model.exit2(s1)):
        assert len(exit_output) == 2
        for got, want in zip(exit_output, expected):
            assert len(want["boxes"]) > 0
            for key in ("boxes", "scores", "labels"):
                assert torch.equal(got[key], want[key]), key


@torch.no_grad()
def test_a_live_link_changes_only_exit_2():
    reference = torchvision_reference()
    model = dynamic_with(reference.state_dict())
    torch.nn.init.normal_(model.link.projections["c3"].weight, std=0.5)
    images = [torch.rand(3, 96, 96)]
    expected = reference(images)[0]
    s1, _ = model.stage1(images)
    assert torch.equal(model.exit1(s1)[0]["scores"], expected["scores"])
    second = model.exit2(s1)[0]["scores"]
    assert second.shape != expected["scores"].shape or not torch.equal(second, expected["scores"])


def test_training_gives_both_loss_dicts_and_router_scores():
    model = dynamic_with(torchvision_reference().state_dict()).train()
    images = [torch.rand(3, 96, 96), torch.rand(3, 96, 96)]
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


def test_mismatched_class_counts_are_refused():
    with pytest.raises(ValueError, match="same classes"):
        DyRCNNSpec(RCNNSpec(num_classes=3), RCNNSpec(num_classes=4))


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

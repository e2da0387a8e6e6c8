"""The two-stage family: Dy-Faster R-CNN built from torchvision's detection components."""

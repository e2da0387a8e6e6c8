"""Tracking of each camera's detections: the tracker adapter, zones and lines, object events."""

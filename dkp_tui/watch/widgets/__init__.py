"""The dashboard's widgets: curve chart, run list, keypoint overlays, help screen (one small widget each)."""

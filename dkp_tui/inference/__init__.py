"""Inference: a trained detector (PyTorch or exported ONNX) run on images, videos and data-set splits."""

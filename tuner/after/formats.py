"""The formats ``tuner export`` writes and each one's model file (kept free of torch: the CLI's
``--format`` choices are read from here)."""

FORMATS = {"torchscript": "model.pt", "onnx": "model.onnx"}

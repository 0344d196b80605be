"""Data: a dataset loaded once per process, checked, cached, split and put on the device.

- :mod:`tuner.data.loading`: where the files are, one load per process, the tensor cache.
- :mod:`tuner.data.split`: how the training split is cut (validation fraction, caps).
- :mod:`tuner.data.prepared`: normalised, split into train / validation / test, on the device.
"""

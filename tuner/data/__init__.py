"""Data: a dataset loaded once per process, checked, cached, split and put on the device.

- :mod:`tuner.data.loading`: where the files are, one load per process, the tensor cache.
- :mod:`tuner.data.split`: how the training split is cut (validation fraction, caps).
- :mod:`tuner.data.prepared`: normalised, split into train / validation / test, on the device.
"""

from tuner.faces import face

OFFERS = {
    "DEFAULT_VAL_FRACTION": "split",
    "DataSettings": "split",
    "PreparedData": "prepared",
    "default_data_dir": "loading",
    "load_data": "prepared",
    "load_splits": "loading",
    "model_shape": "prepared",
    "normalize": "prepared",
    "prepare": "prepared",
    "validation_cap": "split",
}
__all__ = sorted(OFFERS)
__getattr__ = face(__name__, OFFERS)

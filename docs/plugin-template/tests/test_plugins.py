"""tuner's conformance kit, run on this package's plugins: one import, one class each."""

import tempfile

from tuner_mynet.data import write_example_files

from tuner.testing import ArchitectureConformance, DatasetConformance

EXAMPLE_DATA = tempfile.mkdtemp()
write_example_files(EXAMPLE_DATA)


class TestMyNet(ArchitectureConformance):
    plugin = "mynet"


class TestMyData(DatasetConformance):
    plugin = "mydata"
    data_dir = EXAMPLE_DATA

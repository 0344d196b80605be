from tuner_plugins.lenet import lenet  # noqa: F401  the same model under a clashing name

"""The builtin plugins: every model and dataset of the seed posts.

Installed as ``tuner_plugins`` (the folder is ``plugins/``) and registered through the
project's ``pyproject.toml`` entry points, exactly as a third-party package would be.
"""

"""Storage: where a study lives, opening it safely, what it records, and its weights.

- :mod:`tuner.storage.location`: a path or URL made a location; passwords never shown.
- :mod:`tuner.storage.sqlite`: a SQLite file checked before Optuna opens it, and its settings.
- :mod:`tuner.storage.opening`: a study's storage opened, locked, closed at exit; write errors named.
- :mod:`tuner.storage.records`: every key tuner stores, a typed reading of a trial, the study's records.
- :mod:`tuner.storage.stale`: trials whose process died, failed (and a killed reference queued again).
- :mod:`tuner.storage.stores`: where a study's artifact store is, and the stores themselves.
- :mod:`tuner.storage.weights`: a trial's weights saved, found, checked and tidied.
- :mod:`tuner.storage.proxy`: a SQLite study served to ``--ray`` actors, a trial's writes batched.

Nothing here imports torch at module level, nor the modules that train or run a study.
"""

from tuner.faces import face

OFFERS = {
    "AtomicFileSystemStore": "stores",
    "BESIDE_DB": "stores",
    "BatchingProxy": "proxy",
    "IMPORTANCE": "records",
    "Location": "location",
    "StudyArtifacts": "weights",
    "TrialView": "records",
    "ZERO_SWITCH": "records",
    "fail_dead_trials": "stale",
    "for_study": "weights",
    "hide_password": "location",
    "load_existing": "opening",
    "locate": "location",
    "locate_target": "location",
    "open_study": "opening",
    "provenance": "records",
    "select_trials": "records",
    "serve": "proxy",
    "sqlite_url": "location",
    "state_counts": "records",
    "storage_for": "opening",
    "study_names": "opening",
    "view": "records",
}
__all__ = sorted(OFFERS)
__getattr__ = face(__name__, OFFERS)

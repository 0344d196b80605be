"""The study: ``tuner optimize``'s options, and a study opened, created or resumed and made ready.

- :mod:`tuner.study.options`: every option of ``tuner optimize``, defined once.
- :mod:`tuner.study.prepare`: a study opened or created and made ready to run, in named steps.
- :mod:`tuner.study.testset`: the test set, touched once when a study ends.
"""

from tuner.faces import face

OFFERS = {
    "AUTO": "options",
    "Flag": "options",
    "OptimizeOptions": "options",
    "PreparedStudy": "prepare",
    "check_options": "prepare",
    "measure_test_accuracy": "testset",
    "prepare_study": "prepare",
}
__all__ = sorted(OFFERS)
__getattr__ = face(__name__, OFFERS)

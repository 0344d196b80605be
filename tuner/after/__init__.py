"""After the study: what a finished study says, and everything made from it.

- :mod:`tuner.after.summary`: ``tuner best``'s summary and how sure its comparison is.
- :mod:`tuner.after.importance`: which hyperparameters mattered; best values at a range's edge.
- :mod:`tuner.after.rebuild`: a stored trial's pair, data and model rebuilt from its recipe.
- :mod:`tuner.after.reproduce`: ``tuner reproduce``: a trial re-trained and compared epoch by epoch.
- :mod:`tuner.after.export`: ``tuner export``: TorchScript or ONNX with model.json, verified
  (its formats: :mod:`tuner.after.formats`).
- :mod:`tuner.after.report`: ``tuner report``: one offline HTML file of the search's figures.
- :mod:`tuner.after.dashboard`: ``tuner dashboard``: optuna-dashboard with the hyperparameters' names.
- :mod:`tuner.after.tracking`: ``--mlflow``: one MLflow run per trial.

Built on storage, data and training; never on the study runner (:mod:`tuner.study`).
"""

from tuner.faces import face

OFFERS = {
    "best_summary": "summary",
    "remember": "importance",
    "search_line": "summary",
    "trained_trial": "rebuild",
    "trials_json": "summary",
    "write_report": "report",
}
__all__ = sorted(OFFERS)
__getattr__ = face(__name__, OFFERS)

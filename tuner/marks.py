"""The user-attribute keys under which tuner marks its trials, so that modules reading a study
need not import the ones that train (and torch with them)."""

REFERENCE_ATTR = "reference"  # trial: the enqueued reference (hand-picked settings)
RECIPE_ATTR = "recipe"  # trial: what re-training it needs (tuner.replay reads it)
IMPORTANCE_ATTR = "importance"  # study: importance computed when a run ended (tuner.insight)

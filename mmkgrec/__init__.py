"""mmkgrec's Python API: load a trained checkpoint, recommend and explain by external ids (see
:mod:`mmkgrec.recommender`)."""

from mmkgrec.recommender import ExplanationPath, Recommendation, Recommender, UnknownIdError

__all__ = ["ExplanationPath", "Recommendation", "Recommender", "UnknownIdError"]

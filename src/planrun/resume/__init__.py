"""Resume: what an earlier run's steps do when it is resumed.

``planrun.resume.decide`` is the pure decision (:func:`choose`, what changed);
``planrun.resume.load`` reads a run back from the store and applies it
(:func:`~planrun.resume.load.load_resume`). Only the pure names are re-exported
here, so importing the decision never pulls in the store.
"""

from .decide import Action, Choice, PriorStep, choose, plan_changes, variable_changes

__all__ = ["Action", "Choice", "PriorStep", "choose", "plan_changes", "variable_changes"]

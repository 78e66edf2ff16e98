"""Errors of the model package (see the tree in ``features/errors.py``)."""

from __future__ import annotations

from features.errors import FraudscoreError


class ModelError(FraudscoreError):
    """A model cannot be trained or loaded as asked."""


class TrainingError(ModelError):
    """The training data cannot give a model: too short, or no fraud labelled in time."""


class ArtefactError(ModelError):
    """A model artefact is missing, damaged, unsafe, or made for other features."""

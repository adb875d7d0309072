"""Moved to :mod:`nclab.measure.files`; this alias keeps ``from nclab.io import load_features`` working."""

from nclab.measure.files import FEATURE_KEYS, REQUIRED_KEYS, load_features, save_features

__all__ = ["FEATURE_KEYS", "REQUIRED_KEYS", "load_features", "save_features"]

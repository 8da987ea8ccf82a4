"""``python -m experiments params.Hyperparams`` runs like ``experiment params.Hyperparams``."""

from superparams import entrypoint

entrypoint()

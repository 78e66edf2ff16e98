"""The feature vector the model scores: the card's features, then the merchant's.

:data:`FEATURE_NAMES` names its entries in order, :data:`FEATURE_SCHEMA_VERSION` numbers the
list: a model artefact is refused by a build whose list differs (:mod:`models.artefact`).

- 3: + the six merchant-risk features of :mod:`features.merchant`;
- 2: the 32 per-card features of :mod:`features.card`.
"""

from __future__ import annotations

from features.card import CARD_FEATURE_NAMES
from features.merchant import MERCHANT_FEATURE_NAMES

FEATURE_SCHEMA_VERSION = 3
FEATURE_NAMES: tuple[str, ...] = (*CARD_FEATURE_NAMES, *MERCHANT_FEATURE_NAMES)

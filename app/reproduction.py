"""``fraudscore audit reproduce``: recompute a recorded decision and compare it bit for bit.

The audit row of a transaction holds the feature vector the worker scored, and the versions
of the model and policy that decided. Reproducing it loads those very versions (the model's
artefact as registered, checked against its registered SHA-256; the policy's thresholds and
rules as stored), runs the worker's own scoring step (:meth:`models.pipeline.Pipeline.judge`)
on the recorded vector, and compares score (bit for bit), decision and reason codes.

Where the versions come from, in order: the registry (any status: retired models and
inactive policies count); else the configured model and policy, but only when their versions
are the recorded ones: ``FRAUDSCORE_MODEL_PATH``'s artefact, or the built-in default model
(``default-gbc-2``), and the configured thresholds (``default-1``). Those two versions do not
pin what they stand for (the default model's training code, the threshold settings can
change), so the result says where each came from. Anything else is a
:class:`~app.errors.ReproductionError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pyarrow as pa

from app.audit_query import find_transaction
from app.db import registry
from app.db.engine import safe_url
from app.db.session import registry_session
from app.errors import ReproductionError
from app.live_pipeline import configured_policy
from app.model_cache import cached_default_model
from app.settings import FraudscoreSettings
from features.card import FeatureVector
from features.schema import FEATURE_NAMES, FEATURE_SCHEMA_VERSION
from models.artefact import load_artefact
from models.default import MODEL_VERSION as DEFAULT_MODEL_VERSION
from models.pipeline import DecisionRecord, Pipeline, Verdict
from models.policy import Policy
from models.scorer import Scorer
from sinks.errors import AuditError

DEFAULT_POLICY_VERSION = Policy().version


@dataclass(frozen=True, slots=True)
class Reproduction:
    """A recorded decision beside the one its model and policy give again."""

    transaction_id: str
    model_version: str
    model_source: str  # where that model was loaded from
    policy_version: str
    policy_source: str
    recorded: Verdict
    reproduced: Verdict

    @property
    def identical(self) -> bool:
        """Same score bits, decision and reason codes."""
        recorded, again = self.recorded, self.reproduced
        return _same_bits(recorded.score, again.score) and (
            (recorded.decision, recorded.reasons) == (again.decision, again.reasons)
        )

    def differences(self) -> list[str]:
        """The names of what differs: ``score``, ``decision``, ``reasons``."""
        return [row["field"] for row in self.comparison().to_pylist() if not row["identical"]]

    def comparison(self) -> pa.Table:
        """One row per compared field: recorded, reproduced, identical. Scores are shown as
        Python's shortest repr, which tells any two doubles apart."""
        recorded, again = self.recorded, self.reproduced
        fields = [
            ("score", repr(recorded.score), repr(again.score)),
            ("decision", recorded.decision, again.decision),
            ("reasons", ",".join(recorded.reasons), ",".join(again.reasons)),
        ]
        same = [
            _same_bits(recorded.score, again.score),
            recorded.decision == again.decision,
            recorded.reasons == again.reasons,
        ]
        names, was, now = zip(*fields, strict=True)
        return pa.table({"field": names, "recorded": was, "reproduced": now, "identical": same})


def _same_bits(a: float, b: float) -> bool:
    return a.hex() == b.hex()


def reproduce(
    settings: FraudscoreSettings, transaction_id: str, *, day: date | None = None
) -> Reproduction:
    """Recompute the recorded decision of ``transaction_id`` with its recorded model and
    policy (``day``: its event date, to read that day's files only). Blocking I/O."""
    decision = _recorded(settings, transaction_id, day)
    vector = _vector(decision)
    scorer, model_source = recorded_model(settings, decision.model_version)
    policy, policy_source = recorded_policy(settings, decision.policy_version)
    pipeline = Pipeline(scorer, policy, max_record_bytes=settings.max_record_bytes)
    [verdict] = pipeline.judge([vector])
    return Reproduction(
        transaction_id=transaction_id,
        model_version=decision.model_version,
        model_source=model_source,
        policy_version=decision.policy_version,
        policy_source=policy_source,
        recorded=Verdict(decision.score, decision.decision, decision.reasons),
        reproduced=verdict,
    )


def _recorded(
    settings: FraudscoreSettings, transaction_id: str, day: date | None
) -> DecisionRecord:
    rows = find_transaction(settings, transaction_id, day=day)
    if not rows:
        raise AuditError(f"transaction {transaction_id!r} is not in the audit table")
    if len(rows) > 1:
        raise AuditError(
            f"transaction {transaction_id!r} has {len(rows)} rows in the audit table, which "
            "holds one per decision: see them with `fraudscore audit txn` and find what "
            "wrote the extra ones"
        )
    return rows[0].committed.decision


def _vector(decision: DecisionRecord) -> FeatureVector:
    """The recorded features in this build's order, refused if this build computes others."""
    if decision.feature_schema_version != FEATURE_SCHEMA_VERSION:
        raise ReproductionError(
            f"transaction {decision.transaction_id!r} was scored on feature schema "
            f"{decision.feature_schema_version}; this build's models take schema "
            f"{FEATURE_SCHEMA_VERSION}: reproduce it with a build of that schema"
        )
    missing = [name for name in FEATURE_NAMES if name not in decision.features]
    if missing:
        raise ReproductionError(
            f"the audit row of {decision.transaction_id!r} lacks features {missing}, so its "
            "score cannot be recomputed: the row is damaged, or was not written by the sink"
        )
    return tuple(decision.features[name] for name in FEATURE_NAMES)


def recorded_model(settings: FraudscoreSettings, version: str) -> tuple[Scorer, str]:
    """The model a decision names, and where it was loaded from (also for ``replay``)."""
    with registry_session(settings) as session:
        ref = registry.model_ref(session, version)
        known = [m.version for m in registry.models(session)]
    if ref is not None:
        return registry.load_registered(ref), f"registry, artefact {ref.path}"
    if settings.model_path is not None:
        scorer = load_artefact(settings.model_path)
        if scorer.version == version:
            return scorer, f"FRAUDSCORE_MODEL_PATH {settings.model_path}"
    elif version == DEFAULT_MODEL_VERSION:
        scorer = cached_default_model(settings.model_cache_dir)
        return scorer, "the built-in default model of this build (its version does not pin it)"
    raise ReproductionError(
        f"model {version!r} is not in the registry (registered: {', '.join(known) or 'none'}) "
        "and is not the configured model: register its artefact with `fraudscore model "
        "register DIR` (or point FRAUDSCORE_MODEL_PATH at it) and reproduce again"
    )


def recorded_policy(settings: FraudscoreSettings, version: str) -> tuple[Policy, str]:
    """The policy a decision names, and where it came from (also for ``replay``)."""
    with registry_session(settings) as session:
        policy = registry.policy_version(session, version)
    if policy is not None:
        return policy, "registry"
    if version == DEFAULT_POLICY_VERSION:
        return configured_policy(settings), (
            "the configured thresholds (FRAUDSCORE_REVIEW_THRESHOLD, "
            "FRAUDSCORE_DECLINE_THRESHOLD): its version does not pin them"
        )
    raise ReproductionError(
        f"policy {version!r} is not in the registry database {safe_url(settings.sql_url)}: "
        "reproduce against the database whose `fraudscore policy set` made it"
    )

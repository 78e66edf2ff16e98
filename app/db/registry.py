"""The model registry and the decision policies: the rules behind ``fraudscore model`` and
``fraudscore policy``, and what a worker reads to know what to run.

A model's life (``docs/REGISTRY.md``)::

    register ──▶ candidate ──shadow──▶ shadow ──promote──▶ active ──promote another──▶ retired
                     │  ▲                │                   ▲  │                       │
                     │  └──unshadow──────┘                   │  └──rollback──▶ retired   │
                     └──────────────promote──────────────────┘◀──promote / rollback─────┘

- ``promote V``: V becomes active; the model active before is retired; a promotion is pushed
  on the stack of promotions.
- ``rollback``: the newest promotion is undone: its model is retired and the model of the
  promotion below it is active again. The first promotion cannot be rolled back (promote
  another version instead).
- ``shadow V``: V is scored beside the active model (one shadow at most; the previous shadow
  goes back to candidate); ``unshadow`` ends it.
- ``policy set``: a new policy version, made from the active one (or the configured one) with
  the given changes, becomes the one active policy.

Every change is checked here, made in one database transaction, and logged with who and
when in ``admin_actions``. Promote, shadow and rollback load the artefact first (all of
:func:`models.artefact.load_artefact`'s checks), so a model workers would refuse is refused
here already.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.errors import RegistryError, UnknownVersionError
from app.db.tables import AdminAction, DecisionPolicy, ModelPromotion, ModelStatus, ModelVersion
from models.artefact import load_artefact, read_metadata
from models.errors import ArtefactError
from models.policy import Policy
from models.scorer import Scorer

POLICY_FIELDS = (
    "review_threshold",
    "decline_threshold",
    "velocity_count_above",
    "velocity_amount_above",
    "many_merchants_10m",
    "high_amount",
)


@dataclass(frozen=True, slots=True)
class ArtefactRef:
    """A registered artefact, as a worker needs it to load and check it."""

    version: str
    path: Path
    sha256: str


@dataclass(frozen=True, slots=True)
class Selection:
    """What the registry says workers run. None: nothing in the registry, so the configured
    model (``FRAUDSCORE_MODEL_PATH`` or the default) or policy (the thresholds settings)."""

    model: ArtefactRef | None
    shadow: ArtefactRef | None
    policy: Policy | None


def _now() -> datetime:
    return datetime.now(UTC)


def _ref(row: ModelVersion) -> ArtefactRef:
    return ArtefactRef(row.version, Path(row.artefact_path), row.model_sha256)


def load_registered(ref: ArtefactRef) -> Scorer:
    """The scorer of a registered artefact, refused if its files changed since registration."""
    scorer = load_artefact(ref.path)
    if read_metadata(ref.path).digest != ref.sha256 or scorer.version != ref.version:
        raise ArtefactError(
            f"the artefact at {ref.path} is no longer the model {ref.version!r} that was "
            "registered from there (its model file or version changed): register the new one "
            "under its own version"
        )
    return scorer


def read_selection(session: Session) -> Selection:
    live = session.scalars(
        select(ModelVersion).where(
            ModelVersion.status.in_([ModelStatus.ACTIVE, ModelStatus.SHADOW])
        )
    ).all()
    by_status = {row.status: _ref(row) for row in live}
    policy = active_policy(session)
    return Selection(
        model=by_status.get(ModelStatus.ACTIVE),
        shadow=by_status.get(ModelStatus.SHADOW),
        policy=None if policy is None else policy_of(policy),
    )


def _log(
    session: Session,
    actor: str,
    action: str,
    *,
    model: str | None = None,
    policy: str | None = None,
    **detail: Any,
) -> None:
    session.add(
        AdminAction(
            at=_now(),
            actor=actor,
            action=action,
            model_version=model,
            policy_version=policy,
            detail=detail,
        )
    )


# --- models -------------------------------------------------------------------------------
def models(session: Session) -> list[ModelVersion]:
    return list(session.scalars(select(ModelVersion).order_by(ModelVersion.id)))


def register_model(session: Session, directory: Path, actor: str) -> ModelVersion:
    """Register the artefact in ``directory`` (after every check of ``load_artefact``)."""
    directory = directory.resolve()
    scorer = load_artefact(directory)
    metadata = read_metadata(directory)
    existing = session.scalar(select(ModelVersion).where(ModelVersion.version == scorer.version))
    if existing is not None:
        raise RegistryError(
            f"model {scorer.version!r} is already registered (from {existing.artefact_path}): "
            "versions are unique; train the new model under another --version"
        )
    now = _now()
    row = ModelVersion(
        version=scorer.version,
        status=ModelStatus.CANDIDATE,
        artefact_path=str(directory),
        model_sha256=metadata.digest,
        feature_schema_version=metadata.feature_schema_version,
        feature_schema_hash=metadata.feature_schema_hash,
        metrics=metadata.training.get("metrics", {}),
        artefact_metadata=msgspec.to_builtins(metadata),
        registered_by=actor,
        registered_at=now,
        status_changed_by=actor,
        status_changed_at=now,
    )
    session.add(row)
    _log(session, actor, "model.register", model=row.version, artefact=str(directory))
    return row


def _model_row(session: Session, version: str) -> ModelVersion | None:
    return session.scalar(select(ModelVersion).where(ModelVersion.version == version))


def model(session: Session, version: str) -> ModelVersion:
    """The registered model ``version``; :class:`UnknownVersionError` if there is none."""
    row = _model_row(session, version)
    if row is None:
        known = ", ".join(m.version for m in models(session)) or "none"
        raise UnknownVersionError(
            f"no model {version!r} in the registry (registered: {known}); "
            "register it first with `fraudscore model register ARTEFACT_DIR`"
        )
    return row


def model_ref(session: Session, version: str) -> ArtefactRef | None:
    """The registered artefact of model ``version``, whatever its status (None: unknown)."""
    row = _model_row(session, version)
    return None if row is None else _ref(row)


def _with_status(session: Session, status: ModelStatus) -> ModelVersion | None:
    return session.scalar(select(ModelVersion).where(ModelVersion.status == status))


def _move(session: Session, row: ModelVersion, status: ModelStatus, actor: str) -> None:
    row.status = status
    row.status_changed_by = actor
    row.status_changed_at = _now()
    session.flush()  # one statement per move: the unique "one active/shadow" indexes hold


def _occupy(
    session: Session, row: ModelVersion, status: ModelStatus, vacated: ModelStatus, actor: str
) -> ModelVersion | None:
    """Move ``row`` (after loading its artefact) to ``status``, which one model at most has;
    the model that had it moves to ``vacated`` and is returned."""
    load_registered(_ref(row))
    previous = _with_status(session, status)
    if previous is not None:
        _move(session, previous, vacated, actor)
    _move(session, row, status, actor)
    return previous


def promote(session: Session, version: str, actor: str) -> ModelVersion | None:
    """Make ``version`` the active model; returns the model it replaced, if any."""
    row = model(session, version)
    if row.status is ModelStatus.ACTIVE:
        raise RegistryError(f"model {version!r} is already active")
    previous = _occupy(session, row, ModelStatus.ACTIVE, ModelStatus.RETIRED, actor)
    session.add(ModelPromotion(model=row, promoted_by=actor, promoted_at=_now()))
    replaced = None if previous is None else previous.version
    _log(session, actor, "model.promote", model=version, replaced=replaced)
    return previous


def rollback(session: Session, actor: str) -> tuple[ModelVersion, ModelVersion]:
    """Undo the newest promotion; returns (the model rolled back, the model active again)."""
    stack = list(
        session.scalars(
            select(ModelPromotion)
            .where(ModelPromotion.rolled_back_at.is_(None))
            .order_by(ModelPromotion.id.desc())
            .limit(2)
        )
    )
    if not stack:
        raise RegistryError("no model has been promoted: there is nothing to roll back")
    if len(stack) == 1:
        raise RegistryError(
            f"{stack[0].model.version!r} is the first model promoted, there is none before it "
            "to roll back to: promote another version instead"
        )
    top, below = stack
    restored = below.model
    load_registered(_ref(restored))
    top.rolled_back_by, top.rolled_back_at = actor, _now()
    _move(session, top.model, ModelStatus.RETIRED, actor)
    _move(session, restored, ModelStatus.ACTIVE, actor)
    _log(session, actor, "model.rollback", model=restored.version, rolled_back=top.model.version)
    return top.model, restored


def shadow(session: Session, version: str, actor: str) -> ModelVersion | None:
    """Score ``version`` in shadow; returns the shadow model it replaced, if any."""
    row = model(session, version)
    if row.status is ModelStatus.ACTIVE:
        raise RegistryError(
            f"model {version!r} is active: a shadow model is scored beside the active one"
        )
    if row.status is ModelStatus.SHADOW:
        raise RegistryError(f"model {version!r} is already the shadow model")
    previous = _occupy(session, row, ModelStatus.SHADOW, ModelStatus.CANDIDATE, actor)
    replaced = None if previous is None else previous.version
    _log(session, actor, "model.shadow", model=version, replaced=replaced)
    return previous


def unshadow(session: Session, actor: str) -> ModelVersion:
    """Stop shadow scoring; returns the model that was in shadow (a candidate again)."""
    row = _with_status(session, ModelStatus.SHADOW)
    if row is None:
        raise RegistryError("no model is in shadow")
    _move(session, row, ModelStatus.CANDIDATE, actor)
    _log(session, actor, "model.unshadow", model=row.version)
    return row


# --- policies -----------------------------------------------------------------------------
def active_policy(session: Session) -> DecisionPolicy | None:
    return session.scalar(select(DecisionPolicy).where(DecisionPolicy.active))


def policies(session: Session) -> list[DecisionPolicy]:
    """Every policy version, oldest first."""
    return list(session.scalars(select(DecisionPolicy).order_by(DecisionPolicy.id)))


def _policy_row(session: Session, version: str) -> DecisionPolicy | None:
    return session.scalar(select(DecisionPolicy).where(DecisionPolicy.version == version))


def policy(session: Session, version: str) -> DecisionPolicy:
    """The policy ``version``; :class:`UnknownVersionError` if there is none."""
    row = _policy_row(session, version)
    if row is None:
        raise UnknownVersionError(
            f"no policy {version!r} in the registry: `fraudscore policy set ...` makes one"
        )
    return row


def policy_version(session: Session, version: str) -> Policy | None:
    """Policy ``version``, active or not (None: the registry never had it)."""
    row = _policy_row(session, version)
    return None if row is None else policy_of(row)


def policy_of(row: DecisionPolicy) -> Policy:
    return Policy(version=row.version, **{name: getattr(row, name) for name in POLICY_FIELDS})


def set_policy(
    session: Session, actor: str, configured: Policy, changes: dict[str, Any]
) -> DecisionPolicy:
    """A new active policy: the active one (or ``configured`` if none) with ``changes``."""
    current = active_policy(session)
    base = configured if current is None else policy_of(current)
    count = session.scalar(select(func.count()).select_from(DecisionPolicy)) or 0
    try:
        policy = dataclasses.replace(base, version=f"policy-{count + 1}", **changes)
    except ValueError as exc:
        raise RegistryError(f"refusing the policy: {exc}") from None
    if dataclasses.replace(policy, version=base.version) == base:
        raise RegistryError(f"policy {base.version!r} already has these values: nothing to set")
    if current is not None:
        current.active = False
        session.flush()
    row = DecisionPolicy(
        version=policy.version,
        active=True,
        created_by=actor,
        created_at=_now(),
        **{name: getattr(policy, name) for name in POLICY_FIELDS},
    )
    session.add(row)
    _log(session, actor, "policy.set", policy=row.version, replaced=base.version, **changes)
    return row


def admin_log(session: Session, limit: int) -> list[AdminAction]:
    """The newest ``limit`` admin actions, newest first."""
    return list(session.scalars(select(AdminAction).order_by(AdminAction.id.desc()).limit(limit)))

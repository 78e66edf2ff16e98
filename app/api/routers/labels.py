"""``POST /v1/labels``: an analyst's verdict on a transaction, published to the labels topic
keyed by card token, where ``fraudscore merchant-risk`` reads it. Role: analyst.

The label passes the very validation the aggregator applies to the topic's records
(:func:`models.label.decode_label`): identifiers of 1-64 characters with no card number in
them, reported at or after the transaction. A refused one is a 422 whose code is the reason
(e.g. ``pan_detected``); nothing is published then.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from fastapi import APIRouter, Depends
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, Strict

from app.api.auth import Role, require
from app.api.errors import RejectedInputError
from app.api.handlers import BODY_RESPONSES, PROTECTED_RESPONSES
from app.api.resources import ResourcesDep
from features.validation import Rejection
from models.label import LabelRecord, decode_label
from models.pipeline import format_event_time


def _text(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("a time must be an RFC 3339 string with an offset")
    return value


# RFC 3339 text with an offset only (a model in strict mode takes no text for a datetime)
Timestamp = Annotated[AwareDatetime, Strict(False), BeforeValidator(_text)]
Identifier = Annotated[str, Field(min_length=1, max_length=64)]

router = APIRouter(
    prefix="/v1/labels",
    tags=["labels"],
    responses={**PROTECTED_RESPONSES, **BODY_RESPONSES},
)


class LabelIn(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    transaction_id: Identifier
    card_id: Identifier  # the card token: the record's key
    merchant_id: Identifier
    label: Literal["fraud", "genuine"]
    event_time: Timestamp  # the labelled transaction's
    reported_at: Timestamp | None = None  # default: now; send it to make a retry idempotent


class Published(BaseModel):
    transaction_id: str
    label: str
    reported_at: str
    topic: str
    partition: int
    offset: int


@router.post(
    "",
    summary="Publish an analyst's verdict to the labels topic",
    status_code=202,
    dependencies=[Depends(require(Role.ANALYST))],
)
async def post_label(body: LabelIn, resources: ResourcesDep) -> Published:
    label = _validated(body, resources.settings.max_record_bytes)
    wire = msgspec.json.encode(label.wire())
    sent = await resources.labels.publish(label.key, wire)
    return Published(
        transaction_id=label.transaction_id,
        label=label.label,
        reported_at=format_event_time(label.reported_at_ms),
        topic=sent.topic,
        partition=sent.partition,
        offset=sent.offset,
    )


def _validated(body: LabelIn, max_bytes: int) -> LabelRecord:
    """The label as the aggregator will read it, or :class:`RejectedInputError`."""
    reported_at = body.reported_at or datetime.now(UTC)
    wire = {
        **body.model_dump(exclude={"event_time", "reported_at"}),
        "event_time": body.event_time.isoformat(),
        "reported_at": reported_at.isoformat(),
    }
    decoded = decode_label(msgspec.json.encode(wire), body.card_id.encode(), max_bytes=max_bytes)
    if isinstance(decoded, Rejection):
        raise RejectedInputError(f"label refused: {decoded.detail}", str(decoded.reason))
    return decoded

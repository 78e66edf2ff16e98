"""Cost per record of decoding and validating input transactions, three ways.

Run: ``.venv/bin/python -m app.bench.decode [--records 100000] [--repeats 5] [--seed 7]``

On the same deterministic set of valid wire records (built here from a seeded PRNG), it times:

(a) ``msgspec``: :func:`features.validation.decode_transaction`, the production path;
(b) ``json+checks``: stdlib :func:`json.loads` plus hand-written type/length/range checks;
(c) ``pydantic``: a pydantic v2 strict model, ``model_validate_json``.

All three apply the rules beyond JSON types (PAN, MCC, lat/lon pairing, currency, amount,
time) through the same :func:`features.validation.to_transaction`, so what is compared is
JSON parsing plus type and shape checking plus the intermediate object. Before timing, the
script checks that the three produce identical :class:`~features.transaction.Transaction`
objects for every record. The repeats are interleaved (a, b, c, a, b, c, ...) so that a
change in machine load hits the three alike; best and median are reported.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from app.bench._common import host_info
from features.currency import minor_unit_exponent
from features.transaction import Transaction
from features.validation import (
    Reason,
    Rejection,
    WireRecord,
    decode_transaction,
    decode_wire,
    to_transaction,
)

MAX_BYTES = 8192
Decoder = Callable[[bytes], Transaction | Rejection]
Stage1 = Callable[[bytes], WireRecord | Rejection]

# --- the records ------------------------------------------------------------------------------

_CURRENCIES: tuple[tuple[str, int], ...] = (
    ("USD", 50), ("EUR", 20), ("GBP", 8), ("JPY", 7), ("INR", 6), ("CAD", 5), ("KWD", 2),
    ("CLF", 1), ("BRL", 1),
)  # fmt: skip
_MCCS: tuple[str, ...] = (
    "5411", "5812", "5814", "5541", "5999", "5311", "4111", "4121", "5732", "7011",
    "5912", "4814", "5691", "5942", "7995", "6011", "4829", "5967", "5944", "7399",
)  # fmt: skip
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_START_MS = 1_772_323_200_000  # 2026-03-01T00:00:00Z


def _token(rng: random.Random, prefix: str, length: int) -> str:
    return prefix + "".join(rng.choice(_BASE62) for _ in range(length))


def _amount(rng: random.Random, currency: str) -> str:
    exponent = minor_unit_exponent(currency)
    assert exponent is not None
    major = min(rng.lognormvariate(3.5, 1.3), 50_000.0)
    if currency in {"JPY", "INR"}:
        major *= 100
    minor = max(1, int(major * 10**exponent))
    if exponent == 0:
        return str(minor)
    whole, fraction = divmod(minor, 10**exponent)
    return f"{whole}.{fraction:0{exponent}d}"


def _event_time(rng: random.Random, millis: int) -> str | int:
    form = rng.random()
    if form < 0.25:
        return millis
    instant = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=millis)
    if form < 0.85:
        return instant.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    zone = dt.timezone(dt.timedelta(minutes=rng.choice((-300, -240, 60, 120, 330, 540))))
    return instant.astimezone(zone).isoformat(timespec="milliseconds")


def _record(rng: random.Random, cards: Sequence[str], millis: int) -> dict[str, Any]:
    currency = rng.choices([c for c, _ in _CURRENCIES], [w for _, w in _CURRENCIES])[0]
    fields: dict[str, Any] = {
        "transaction_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "card_id": rng.choice(cards),
        "amount": _amount(rng, currency),
        "currency": currency,
        "merchant_id": f"m_{rng.randrange(1, 250_000):09d}",
        "merchant_category": rng.choice(_MCCS),
        "event_time": _event_time(rng, millis),
    }
    if rng.random() < 0.85:
        fields["device_id"] = _token(rng, "dev_", 16)
    if rng.random() < 0.7:
        fields["lat"] = round(rng.uniform(-60.0, 70.0), 6)
        fields["lon"] = round(rng.uniform(-180.0, 180.0), 6)
    return fields


def build_records(count: int, seed: int) -> list[bytes]:
    """``count`` valid wire records, the same for the same seed."""
    rng = random.Random(seed)
    cards = [_token(rng, "tok_", 22) for _ in range(max(1, count // 20))]
    records: list[bytes] = []
    millis = _START_MS
    while len(records) < count:
        millis += rng.randrange(1, 200)
        raw = json.dumps(_record(rng, cards, millis), separators=(",", ":")).encode()
        if isinstance(decode_transaction(raw, max_bytes=MAX_BYTES), Transaction):
            records.append(raw)  # the rare random id that happens to hold a PAN is dropped
    return records


# --- (b) stdlib json + hand-written checks ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Fields:
    transaction_id: str
    card_id: str
    amount: str
    currency: str
    merchant_id: str
    merchant_category: str
    event_time: str | int
    device_id: str | None
    lat: float | None
    lon: float | None


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _text(obj: dict[str, Any], name: str, longest: int) -> str:
    value = obj[name]
    if not isinstance(value, str) or not 1 <= len(value) <= longest:
        raise _FieldError(name)
    return value


def _optional_text(obj: dict[str, Any], name: str, longest: int) -> str | None:
    return None if obj.get(name) is None else _text(obj, name, longest)


def _number(obj: dict[str, Any], name: str, bound: float) -> float | None:
    value = obj.get(name)
    if value is None:
        return None
    if type(value) not in (int, float) or not -bound <= value <= bound:
        raise _FieldError(name)
    return float(value)


class _FieldError(Exception):
    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


def _stdlib_fields(obj: dict[str, Any]) -> _Fields:
    event_time = obj.get("event_time")
    if not (isinstance(event_time, str) or type(event_time) is int):
        raise _FieldError("event_time")
    for name in ("amount", "currency", "merchant_category"):
        if not isinstance(obj.get(name), str):
            raise _FieldError(name)
    return _Fields(
        transaction_id=_text(obj, "transaction_id", 64),
        card_id=_text(obj, "card_id", 64),
        amount=obj["amount"],
        currency=obj["currency"],
        merchant_id=_text(obj, "merchant_id", 64),
        merchant_category=obj["merchant_category"],
        event_time=event_time,
        device_id=_optional_text(obj, "device_id", 128),
        lat=_number(obj, "lat", 90.0),
        lon=_number(obj, "lon", 180.0),
    )


_REQUIRED: tuple[str, ...] = (
    "transaction_id", "card_id", "amount", "currency", "merchant_id", "merchant_category",
    "event_time",
)  # fmt: skip
_FIELD_REASON = {"amount": Reason.INVALID_AMOUNT, "event_time": Reason.INVALID_EVENT_TIME}


def decode_stdlib(raw: bytes) -> Transaction | Rejection:
    """(b): the same contract as ``decode_transaction`` with the standard library only."""
    wire = stdlib_wire(raw)
    return wire if isinstance(wire, Rejection) else to_transaction(wire)


def stdlib_wire(raw: bytes) -> WireRecord | Rejection:
    """(b), first stage: size, JSON, types, lengths and ranges."""
    if len(raw) > MAX_BYTES:
        return Rejection(Reason.OVERSIZED, "record too large")
    try:
        obj = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        return Rejection(Reason.MALFORMED_JSON, str(exc))
    if not isinstance(obj, dict):
        return Rejection(Reason.MALFORMED_JSON, "record must be a JSON object")
    for name in _REQUIRED:
        if name not in obj:
            return Rejection(Reason.MISSING_FIELD, name)
    try:
        fields = _stdlib_fields(obj)
    except _FieldError as exc:
        return Rejection(_FIELD_REASON.get(exc.field, Reason.INVALID_FIELD), exc.field)
    return fields


# --- (c) pydantic v2 strict model --------------------------------------------------------------

_Id = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class _PydanticWire(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    transaction_id: _Id
    card_id: _Id
    amount: str
    currency: str
    merchant_id: _Id
    merchant_category: str  # the four-digit rule is in the shared to_transaction, as for (a)
    event_time: str | int
    device_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    lat: Annotated[float, Field(ge=-90.0, le=90.0, allow_inf_nan=False)] | None = None
    lon: Annotated[float, Field(ge=-180.0, le=180.0, allow_inf_nan=False)] | None = None


def decode_pydantic(raw: bytes) -> Transaction | Rejection:
    """(c): the same contract with a strict pydantic v2 model parsing the JSON (in Rust)."""
    wire = pydantic_wire(raw)
    return wire if isinstance(wire, Rejection) else to_transaction(wire)


def pydantic_wire(raw: bytes) -> WireRecord | Rejection:
    """(c), first stage: size, JSON, types, lengths and ranges."""
    if len(raw) > MAX_BYTES:
        return Rejection(Reason.OVERSIZED, "record too large")
    try:
        return _PydanticWire.model_validate_json(raw)
    except ValidationError as exc:
        return _pydantic_rejection(exc)


def _pydantic_rejection(exc: ValidationError) -> Rejection:
    error = exc.errors()[0]
    if error["type"] in {"json_invalid", "json_type", "model_type"}:
        return Rejection(Reason.MALFORMED_JSON, error["msg"])
    field = str(error["loc"][0]) if error["loc"] else ""
    if error["type"] == "missing":
        return Rejection(Reason.MISSING_FIELD, field)
    return Rejection(_FIELD_REASON.get(field, Reason.INVALID_FIELD), field)


# --- timing and report -------------------------------------------------------------------------


def decode_msgspec(raw: bytes) -> Transaction | Rejection:
    """(a): the production path."""
    return decode_transaction(raw, max_bytes=MAX_BYTES)


def msgspec_wire(raw: bytes) -> WireRecord | Rejection:
    """(a), first stage."""
    return decode_wire(raw, max_bytes=MAX_BYTES)


DECODERS: dict[str, Decoder] = {
    "(a) msgspec": decode_msgspec,
    "(b) json.loads + hand-written checks": decode_stdlib,
    "(c) pydantic v2 strict model": decode_pydantic,
}
STAGE1: dict[str, Stage1] = {
    "(a) msgspec": msgspec_wire,
    "(b) json.loads + hand-written checks": stdlib_wire,
    "(c) pydantic v2 strict model": pydantic_wire,
}


def _check_agreement(records: Sequence[bytes]) -> None:
    for raw in records:
        results = [decode(raw) for decode in DECODERS.values()]
        if not isinstance(results[0], Transaction) or any(r != results[0] for r in results):
            sys.exit(f"decoders disagree on {raw!r}: {results}")


def _time_once(decode: Callable[[bytes], object], records: Sequence[bytes]) -> float:
    """Seconds per record for one pass over ``records``."""
    gc.collect()
    start = time.perf_counter_ns()
    for raw in records:
        decode(raw)
    return (time.perf_counter_ns() - start) / 1e9 / len(records)


def measure(
    decoders: dict[str, Callable[[bytes], object]], records: Sequence[bytes], repeats: int
) -> dict[str, list[float]]:
    """Per decoder, the seconds per record of each repeat (interleaved across decoders)."""
    timings: dict[str, list[float]] = {name: [] for name in decoders}
    for _ in range(repeats):
        for name, decode in decoders.items():
            timings[name].append(_time_once(decode, records))
    return timings


def machine_info() -> list[str]:
    libs = ", ".join(f"{lib} {version(lib)}" for lib in ("msgspec", "pydantic", "pydantic-core"))
    return [f"{key}: {value}" for key, value in host_info(libs)]


def report(title: str, timings: dict[str, list[float]]) -> None:
    base_best = min(next(iter(timings.values())))
    base_median = statistics.median(next(iter(timings.values())))
    print(f"\n{title}\n")
    print("| decoder | best µs/record | median µs/record | best vs (a) | median vs (a) |")
    print("|---|---:|---:|---:|---:|")
    for name, runs in timings.items():
        best, median = min(runs), statistics.median(runs)
        print(
            f"| {name} | {best * 1e6:.2f} | {median * 1e6:.2f} "
            f"| {best / base_best:.2f}x | {median / base_median:.2f}x |"
        )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app.bench.decode", description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    print("\n".join(machine_info()))
    arguments = " ".join(sys.argv[1:] if argv is None else argv)
    print(f"command: {os.path.relpath(sys.executable)} -m app.bench.decode {arguments}".rstrip())
    records = build_records(args.records, args.seed)
    _check_agreement(records)
    mean_size = sum(map(len, records)) / len(records)
    print(
        f"records: {len(records)} valid wire records (seed {args.seed}), mean {mean_size:.0f}",
        end="",
    )
    print(f" bytes; {args.repeats} interleaved repeats per table")
    full = measure(dict(DECODERS), records, args.repeats)
    report("Full decode + validation -> Transaction | Rejection:", full)
    stage1 = measure(dict(STAGE1), records, args.repeats)
    report(
        "First stage only (size, JSON parse, types/lengths/ranges; shared rules excluded):", stage1
    )
    rate = 1 / statistics.median(full["(a) msgspec"])
    print(f"\n(a) full path: {rate:,.0f} records/s on one core (median)")


if __name__ == "__main__":
    main()

"""Hypothesis strategies for one partition's log: several cards, out-of-order and late
arrivals, duplicate deliveries, and gaps long enough for cards to expire under :data:`TTL`."""

from __future__ import annotations

from hypothesis import strategies as st

from features.card import DEFAULT_PARAMS
from features.transaction import Transaction
from tests.support.oracle import DAY, HOUR, MIN, PLACES, T0, Step, txn_of

OOO = DEFAULT_PARAMS.max_out_of_orderness_ms
TTL = 2 * DAY  # short, so that random logs see cards expire and come back
_AROUND_TTL = [TTL - OOO - 1, TTL - OOO, TTL - OOO + 1, TTL + HOUR]
_LATE = [OOO, OOO + 1, OOO + MIN, OOO + HOUR, HOUR + 1, DAY + OOO, DAY + OOO + 1, TTL + HOUR]

# One transaction: within the bound, a little late, around the card's horizon or far behind.
step = st.tuples(
    st.one_of(
        st.integers(0, 90_000),
        st.sampled_from([0, 1, MIN, HOUR - 1, HOUR, DAY, DAY + OOO, *_AROUND_TTL]),
        st.integers(0, 3 * DAY),
    ),
    st.one_of(st.integers(0, OOO), st.sampled_from(_LATE), st.integers(0, 3 * DAY)),
    st.integers(0, 3),
    st.integers(0, 500_000),
    st.integers(0, 6),
    st.sampled_from([0, 2]),
    st.one_of(st.none(), st.integers(0, 3)),
    st.one_of(st.none(), st.integers(0, len(PLACES) - 1)),
    st.sampled_from([0, -300]),
)
# An int is a duplicate delivery: another copy of an earlier transaction (its index modulo
# the number so far); a step is a new transaction. The first item is a new one.
log_items = st.builds(
    lambda first, rest: [first, *rest],
    step,
    st.lists(st.one_of(step, step, st.integers(0, 1000)), max_size=60),
)


def log_of(items: list[Step | int]) -> list[Transaction]:
    """The transactions ``log_items`` describes, in offset order."""
    base, out = T0, list[Transaction]()
    for item in items:
        if isinstance(item, int):
            out.append(out[item % len(out)])
            continue
        base += item[0]
        out.append(txn_of(len(out), base - item[1], item))
    return out

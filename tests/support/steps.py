"""A gate that lets a test's producer send in steps, one per process the test kills.

A kill test whose input all arrives at once kills its later processes while they idle, and
their failpoints wait for commits that never come. Started processes are stepped instead:
:meth:`Steps.step` lets the next ``size`` records go, once the process is ready to take them.
"""

from __future__ import annotations

import asyncio
import sys


class Steps:
    def __init__(self, size: int) -> None:
        self.size = size
        self._allowed = 0
        self._more = asyncio.Event()

    async def held(self, sent: int) -> None:
        """Await before sending more, with the number of records sent so far."""
        while sent >= self._allowed:
            self._more.clear()
            await self._more.wait()

    def step(self) -> None:
        """Let ``size`` more records go."""
        self._allowed += self.size
        self._more.set()

    def open(self) -> None:
        """Let everything left go."""
        self._allowed = sys.maxsize
        self._more.set()

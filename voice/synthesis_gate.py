"""Who may use the CPU for speech synthesis: confirmed turns first, the pause's guesses after.

A preemptive synthesis (:mod:`voice.preemptive_speech`) speaks a reply nobody has asked for yet:
the turn may never adopt it.  On a small machine Piper's CPU is the scarce part, so a guess must
never slow a turn that is really being answered.  One :class:`SynthesisGate` per process (the
runtime's, shared by its sessions) holds the rule:

* a confirmed turn's synthesis never waits here (:meth:`SynthesisGate.confirmed` only counts it);
* a preemptive synthesis starts only while no confirmed synthesis runs in any session
  (:meth:`SynthesisGate.preemptive`), unless its turn adopted it meanwhile
  (:meth:`GateTicket.promote`): then it is a confirmed synthesis, and others wait for it.

A preemptive synthesis already running when a confirmed one starts is not stopped: it is one
short first sentence (a few hundred ms of Piper), and what it made is kept if the turn adopts it.
All sessions of a process share one event loop, so plain counters are enough; the waiting
futures belong to the loop that waits on them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class GateTicket:
    """One preemptive synthesis's place at the gate.  :meth:`promote` when its turn adopts it."""

    def __init__(self, gate: SynthesisGate) -> None:
        self._gate = gate
        self.promoted = False
        self.running = False
        self.counted = False  # counted among the confirmed syntheses (promoted while running)
        self._wakeup: asyncio.Future[None] | None = None

    def promote(self) -> None:
        """The turn adopted this synthesis: it is a confirmed one from now on."""
        if self.promoted:
            return
        self.promoted = True
        if self.running:
            self._gate.confirmed_running += 1
            self.counted = True
        self.wake()

    def wake(self) -> None:
        """Let a waiting :meth:`SynthesisGate.preemptive` look at the gate again."""
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)


class SynthesisGate:
    """The process-wide priority rule between confirmed and preemptive syntheses (module docstring).

    ``confirmed_running``: confirmed syntheses in progress now, over every session;
    ``preemptive_running``: preemptive ones; ``preemptive_waits``: how many preemptive syntheses
    had to wait for a confirmed one (for tests and reports).
    """

    def __init__(self) -> None:
        self.confirmed_running = 0
        self.preemptive_running = 0
        self.preemptive_waits = 0
        self._waiting: set[GateTicket] = set()

    def ticket(self) -> GateTicket:
        """A place at the gate for one preemptive synthesis."""
        return GateTicket(self)

    @contextlib.asynccontextmanager
    async def confirmed(self) -> AsyncIterator[None]:
        """A confirmed turn's synthesis runs inside: never waits, holds back preemptive ones."""
        self.confirmed_running += 1
        try:
            yield
        finally:
            self.confirmed_running -= 1
            self._wake_all()

    @contextlib.asynccontextmanager
    async def preemptive(self, ticket: GateTicket) -> AsyncIterator[None]:
        """A preemptive synthesis runs inside, once no confirmed one runs (or it was promoted)."""
        waited = False
        while self.confirmed_running and not ticket.promoted:
            waited = True
            ticket._wakeup = asyncio.get_running_loop().create_future()
            self._waiting.add(ticket)
            try:
                await ticket._wakeup
            finally:
                self._waiting.discard(ticket)
                ticket._wakeup = None
        self.preemptive_waits += waited
        ticket.running = True
        as_guess = not ticket.promoted
        if as_guess:
            self.preemptive_running += 1
        else:
            self.confirmed_running += 1
            ticket.counted = True
        try:
            yield
        finally:
            ticket.running = False
            if as_guess:
                self.preemptive_running -= 1
            if ticket.counted:  # promoted before or while it ran
                ticket.counted = False
                self.confirmed_running -= 1
                self._wake_all()

    def _wake_all(self) -> None:
        if self.confirmed_running:
            return
        for ticket in list(self._waiting):
            ticket.wake()

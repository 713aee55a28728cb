"""The synthesis gate's rule, on its own: confirmed syntheses never wait, preemptive ones wait while
any confirmed one runs, and one the turn adopted (promoted) is a confirmed one from then on.
(The same rule with real Piper in two sessions: tests/test_preemptive_speech.py.)"""

from __future__ import annotations

import asyncio

from voice.synthesis_gate import GateTicket, SynthesisGate


async def test_a_preemptive_synthesis_waits_for_every_confirmed_one() -> None:
    gate = SynthesisGate()
    order: list[str] = []
    release = [asyncio.Event(), asyncio.Event()]

    async def confirmed(n: int) -> None:
        async with gate.confirmed():
            order.append(f"confirmed {n} starts")
            await release[n].wait()
            order.append(f"confirmed {n} ends")

    async def preemptive() -> None:
        async with gate.preemptive(gate.ticket()):
            order.append("preemptive starts")

    first = asyncio.create_task(confirmed(0))
    await asyncio.sleep(0)
    guess = asyncio.create_task(preemptive())
    await asyncio.sleep(0.01)
    second = asyncio.create_task(confirmed(1))  # never waits, even with a guess in line
    await asyncio.sleep(0.01)
    assert order == ["confirmed 0 starts", "confirmed 1 starts"]
    release[0].set()
    await first
    await asyncio.sleep(0.01)
    assert "preemptive starts" not in order  # one confirmed synthesis still runs
    release[1].set()
    await asyncio.gather(second, guess)
    assert order[-1] == "preemptive starts" and gate.preemptive_waits == 1
    assert gate.confirmed_running == gate.preemptive_running == 0


async def test_a_promoted_synthesis_goes_at_once_and_then_holds_back_others() -> None:
    gate = SynthesisGate()
    hold = asyncio.Event()
    running = asyncio.Event()
    adopted, other = gate.ticket(), gate.ticket()
    started: list[str] = []

    async def guess(name: str, ticket: GateTicket) -> None:
        async with gate.preemptive(ticket):
            started.append(name)
            running.set()
            if name == "adopted":
                await hold.wait()

    async with gate.confirmed():
        task = asyncio.create_task(guess("adopted", adopted))
        await asyncio.sleep(0.01)
        assert not started
        adopted.promote()  # its turn adopted it: it is a confirmed synthesis now
        await running.wait()
        assert started == ["adopted"]
    assert gate.confirmed_running == 1  # the promoted one, still running
    waiting = asyncio.create_task(guess("other", other))
    await asyncio.sleep(0.01)
    assert started == ["adopted"]  # the other guess waits for the promoted one
    hold.set()
    await asyncio.gather(task, waiting)
    assert started == ["adopted", "other"]
    assert gate.confirmed_running == gate.preemptive_running == 0


async def test_a_cancelled_wait_leaves_the_gate_clean() -> None:
    gate = SynthesisGate()
    async with gate.confirmed():
        ticket = gate.ticket()

        async def guess() -> None:
            async with gate.preemptive(ticket):
                raise AssertionError("never runs")

        task = asyncio.create_task(guess())
        await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert gate.confirmed_running == gate.preemptive_running == 0 and not gate._waiting

"""The garbage collector's settings (app/runtime/gc_tuning.py): a backstop young pass
when none ran for a while, survivors of a generation-1 pass frozen, a sweep that
reclaims frozen cycles; and the command bus leaves no reference cycle behind a
refused command."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import Settings, default_trading_config
from app.domain.commands import CancelOrder
from app.domain.rejections import CommandRefused
from app.runtime import gc_tuning
from app.runtime.gc_tuning import GcPacer, tuned_gc
from app.runtime.system import TradingSystem


class Node:
    other: Node | None = None


def _cycle() -> tuple[Node, weakref.ref[Node]]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a, weakref.ref(a)


@pytest.fixture
def quiet_gc() -> Iterator[None]:
    """No automatic pass and nothing frozen, as before, whatever the test does."""
    was = gc.isenabled()
    gc.disable()
    gc.collect()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.collect()
        if was:
            gc.enable()


@pytest.fixture
def attached(quiet_gc) -> Iterator[list[GcPacer]]:
    """Pacers made by the test, their hooks removed afterwards."""
    made: list[GcPacer] = []
    yield made
    for pacer in made:
        pacer.detach()


def _pacer(made: list[GcPacer], **kwargs) -> GcPacer:
    pacer = GcPacer(**kwargs)
    pacer.attach()
    made.append(pacer)
    return pacer


def test_a_backstop_pass_frees_a_new_cycle_and_walks_generation_0_only(attached) -> None:
    pacer = _pacer(attached, middle_every=8, sweep_every_s=None)
    a, ref = _cycle()
    del a
    assert ref() is not None  # reference counting alone cannot free a cycle
    assert pacer.step(now=0.0) == 0
    assert ref() is None
    assert pacer.stats.passes == [1, 0, 0] and pacer.stats.backstops == 1
    assert pacer.stats.collected[0] >= 2


def test_no_backstop_when_a_pass_ran_on_its_own(attached) -> None:
    pacer = _pacer(attached, middle_every=8, sweep_every_s=None)
    pacer.step(now=0.0)
    gc.collect(0)  # as the automatic trigger would
    assert pacer.step(now=1.0) is None
    assert pacer.stats.backstops == 1 and pacer.stats.passes[0] == 2
    assert pacer.step(now=2.0) == 0  # nothing ran since: the backstop does


def test_survivors_of_a_generation_1_pass_are_frozen(attached) -> None:
    pacer = _pacer(attached, middle_every=3, sweep_every_s=None)
    frozen = gc.get_freeze_count()
    keep = [Node() for _ in range(500)]
    assert [pacer.step(now=float(i)) for i in range(3)] == [0, 0, 1]
    assert gc.get_freeze_count() >= frozen + 500
    tracked = {id(o) for o in gc.get_objects()}  # every generation a pass can walk
    assert not any(id(node) in tracked for node in keep)
    # A frozen object is still freed by reference counting when dropped.
    ref = weakref.ref(keep[0])
    keep.clear()
    assert ref() is None


def test_an_automatic_generation_1_pass_freezes_too(attached) -> None:
    _pacer(attached, sweep_every_s=None)
    keep = [Node() for _ in range(100)]
    gc.collect(1)
    tracked = {id(o) for o in gc.get_objects()}
    assert not any(id(node) in tracked for node in keep)


def test_a_frozen_cycle_waits_for_the_sweep(attached) -> None:
    pacer = _pacer(attached, middle_every=1, sweep_every_s=60.0)
    a, ref = _cycle()
    assert pacer.step(now=0.0) == 1  # a lives through a generation-1 pass: frozen
    del a
    for t in (1.0, 2.0, 59.0):
        pacer.step(now=t)
    assert ref() is not None  # leaked, until the sweep
    assert pacer.step(now=60.0) == 2
    assert ref() is None
    assert pacer.stats.passes[2] == 1
    assert pacer.step(now=61.0) == 1  # the next sweep is an interval later


def test_tuned_gc_paces_on_its_thread_and_restores_the_collector() -> None:
    was, thresholds = gc.isenabled(), gc.get_threshold()
    with tuned_gc(sweep_hours=0, young_every_s=0.005) as pacer:
        assert gc.isenabled() and gc.get_threshold()[2] == gc_tuning.NO_AUTOMATIC_FULL_PASS
        assert gc_tuning.current is pacer
        a, ref = _cycle()
        del a
        deadline = 200
        while ref() is not None and deadline:
            gc_tuning.time.sleep(0.01)
            deadline -= 1
        assert ref() is None, "no young pass ran"
        assert pacer.stats.passes[0] >= 1
    assert gc.isenabled() is was and gc.get_threshold() == thresholds
    assert gc.get_freeze_count() == 0
    assert gc_tuning.current is None


@pytest.mark.parametrize("kwargs", [{"young_every_s": 0}, {"middle_every": 0},
                                    {"sweep_every_s": 0}])
def test_bad_pacing_is_refused(kwargs) -> None:
    with pytest.raises(ValueError):
        GcPacer(**kwargs)


def test_a_refused_command_leaves_no_cycle_for_the_collector(tmp_path: Path,
                                                              quiet_gc) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'bus.db'}", feed="none",
                        demo_credentials=False, config=None)
    system = TradingSystem(settings, default_trading_config())
    refusals: list[weakref.ref[CommandRefused]] = []

    async def body() -> None:
        await system.start()
        try:
            gc.collect()
            for _ in range(3):
                try:
                    await system.bus.execute(CancelOrder(999_999, "demo"))
                except CommandRefused as refused:
                    refusals.append(weakref.ref(refused))
        finally:
            await system.stop()

    asyncio.run(asyncio.wait_for(body(), 30))
    assert len(refusals) == 3
    # Freed by reference counting as soon as the caller let go: no pass needed.
    assert [r() for r in refusals] == [None, None, None]


def test_a_nested_block_shares_the_outer_pacer() -> None:
    with tuned_gc(sweep_hours=0) as outer:
        with tuned_gc(sweep_hours=0) as inner:
            assert inner is outer
        assert gc_tuning.current is outer and gc.isenabled()
        assert gc.get_freeze_count() > 0  # the inner block unfroze nothing
    assert gc_tuning.current is None


def test_a_sweep_on_demand_reclaims_frozen_cycles(attached) -> None:
    pacer = _pacer(attached, middle_every=1, sweep_every_s=None)
    a, ref = _cycle()
    pacer.step(now=0.0)
    del a
    assert pacer.step(now=1.0) == 1 and ref() is not None
    assert pacer.sweep() >= 0
    assert ref() is None and pacer.stats.passes[2] == 1

"""The cyclic collector paused while a stage builds objects that live on (dsl/parse.py ``no_cyclic_gc``: parsing,
an audit's findings and their table), and left as it was found."""
import gc
import weakref

from claimaudit.dsl.parse import no_cyclic_gc


class _Node:
    pass


def test_the_collector_is_paused_inside_and_the_stage_objects_end_in_the_oldest_generation():
    assert gc.isenabled()
    with no_cyclic_gc():
        assert not gc.isenabled()
        kept = [_Node() for _ in range(50)]
        cycle = _Node()
        cycle.me = cycle  # cyclic garbage made during the stage
        dead = weakref.ref(cycle)
        del cycle
    assert gc.isenabled()
    oldest = {id(o) for o in gc.get_objects(generation=2)}
    assert all(id(n) in oldest for n in kept)  # no young generation left to walk after the stage
    assert dead() is not None  # reference counting cannot free a cycle ...
    gc.collect()
    assert dead() is None  # ... the next full collection does


def test_a_collector_turned_off_by_the_caller_stays_off_and_frozen_objects_stay_frozen():
    frozen_before = gc.get_freeze_count()
    gc.disable()
    try:
        with no_cyclic_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
    gc.freeze()  # an embedding service's own frozen objects
    try:
        frozen = gc.get_freeze_count()
        assert frozen > 0
        with no_cyclic_gc():
            _Node()
        assert gc.get_freeze_count() == frozen and gc.isenabled()
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == frozen_before == 0

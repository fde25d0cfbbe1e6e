import gc
import io
import logging
import weakref

from runners.local.memory import release_freed_memory, startup_objects_frozen
from runners.local.progress import ProgressReporter


def resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * 4096 / 2**20


def test_freed_heap_memory_goes_back_to_the_system() -> None:
    # 1 KB objects come from glibc's heap (Python's own allocator takes only up to 512 bytes);
    # freeing them leaves the pages with the process until they are trimmed.
    blocks = [bytes(1024) + bytes([i % 256]) for i in range(200_000)]
    keep = blocks[-1]
    held = resident_mb()
    del blocks
    release_freed_memory()
    assert held - resident_mb() > 100
    assert keep[-1] == (200_000 - 1) % 256


def test_the_reporter_calls_back_after_every_finished_component() -> None:
    calls = []
    stream = io.StringIO()
    reporter = ProgressReporter(stream, on_finished=lambda: calls.append(reporter.timings[-1].component_id))
    logger = logging.getLogger("test-progress")
    logger.addHandler(reporter)
    logger.setLevel(logging.INFO)
    for component in ("CsvExampleGen", "Trainer"):
        logger.info("Component %s is running.", component)
        logger.info("Component %s is finished.", component)
    assert calls == ["CsvExampleGen", "Trainer"]
    assert "Trainer" in stream.getvalue()


def test_startup_objects_stay_out_of_collections_until_the_run_ends() -> None:
    def collectable(thing: object) -> bool:
        return any(candidate is thing for candidate in gc.get_objects())

    before_the_run = [[]]
    with startup_objects_frozen():
        during_the_run = [[]]
        assert not collectable(before_the_run)
        assert collectable(during_the_run)
    assert collectable(before_the_run)
    assert gc.get_freeze_count() == 0


def test_cycles_made_during_the_run_are_still_collected() -> None:
    class Node:
        pass

    with startup_objects_frozen():
        node = Node()
        node.self = node
        watcher = weakref.ref(node)
        del node
        release_freed_memory()
        assert watcher() is None

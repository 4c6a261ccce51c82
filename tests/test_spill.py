"""on_full: spill: the segment store on disk, the queue around it, and a real run."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runs import (
    EVROUTE,
    environment,
    lines_in,
    order_lines,
    read_stats,
    wait_for,
    write_config,
)

from evroute.config.model import QueueSettings
from evroute.core.parcel import Parcel
from evroute.core.stats import ConsumerStats
from evroute.engine.queues import ConsumerQueue
from evroute.storage import spill
from evroute.storage.spill import SpillLost, SpillStore

BOUND_S = 30  # no wait in these tests may take longer


def parcel(first: int, count: int, width: int = 0) -> Parcel:
    """`count` events numbered from line `first`, each payload its own number (padded)."""
    payloads = [b"%0*d" % (width, first + n) for n in range(count)]
    return Parcel("in.jsonl", ("all", ""), first, payloads, list(range(count)), 0)


def lines(parcels: list[Parcel]) -> list[int]:
    """The line numbers of the events, after checking each payload is its own number."""
    numbers = []
    for item in parcels:
        for position, payload in zip(item.positions, item.payloads, strict=True):
            assert int(payload) == item.first + position
            numbers.append(item.first + position)
    return numbers


def spill_folders(parent: Path) -> list[Path]:
    return sorted(parent.glob("evroute-spill-*"))


def fields(item: Parcel) -> tuple[object, ...]:
    return (
        item.input,
        tuple(item.routes),
        item.first,
        item.payloads,
        item.positions,
        item.route,
        item.originals,
        item.size,
    )


# --- the store ------------------------------------------------------------------------------

ROUND_TRIPS = [
    parcel(1, 3),
    Parcel("in.jsonl", ("a", "b", ""), 7, [b"{}", b"", b'{"x":"\n\xff"}'], [0, 4, 5], [1, 0, 2]),
    Parcel("in.jsonl", ("a",), 1, [b'{"id":1}'], [0], 0, [b'{"id": 1, "more": true}']),
    Parcel("caf\xe9-\udcff.jsonl", (), 2**40, [b"x" * 70_000], [3], 0),  # a non-UTF-8 file name
]


@pytest.mark.parametrize("original", ROUND_TRIPS)
def test_a_parcel_comes_back_exactly(tmp_path: Path, original: Parcel) -> None:
    store = SpillStore(1 << 20, parent=str(tmp_path))
    assert store.append(original) == len(original)
    copy = store.read()
    assert copy is not None
    assert fields(copy) == fields(original)
    assert store.read() is None


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    count=st.integers(1, 6),
    input_name=st.text(max_size=8),
    routed_each=st.booleans(),
    transformed=st.booleans(),
)
def test_any_parcel_comes_back_exactly(
    data: st.DataObject, count: int, input_name: str, routed_each: bool, transformed: bool
) -> None:
    payloads = st.lists(st.binary(max_size=20), min_size=count, max_size=count)
    route = (
        data.draw(st.lists(st.integers(0, 2), min_size=count, max_size=count))
        if routed_each
        else data.draw(st.integers(0, 2))
    )
    original = Parcel(
        input_name,
        ("a", "b", ""),
        data.draw(st.integers(1, 2**50)),
        data.draw(payloads),
        sorted(data.draw(st.lists(st.integers(0, 10**6), min_size=count, max_size=count))),
        route,
        data.draw(payloads) if transformed else None,
    )
    store = SpillStore(1 << 20, parent=tempfile.gettempdir())
    try:
        store.append(original)
        copy = store.read()
    finally:
        store.discard()
    assert copy is not None and fields(copy) == fields(original)


def test_segments_rotate_are_private_and_go_once_read(tmp_path: Path) -> None:
    store = SpillStore(1 << 20, segment_bytes=1000, parent=str(tmp_path))
    umask = os.umask(0)  # the modes must not depend on the umask
    try:
        for number in range(20):
            store.append(parcel(number * 10 + 1, 10, width=20))
    finally:
        os.umask(umask)
    [folder] = spill_folders(tmp_path)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    segments = sorted(folder.iterdir())
    assert len(segments) > 3
    assert {stat.S_IMODE(path.stat().st_mode) for path in segments} == {0o600}
    before = store.bytes
    assert before == sum(path.stat().st_size for path in segments)
    read: list[Parcel] = []
    while len(read) < 10:
        item = store.read()
        assert item is not None
        read.append(item)
    left = sorted(folder.iterdir())
    assert segments[0] not in left and left == segments[-len(left) :]  # the oldest went first
    assert store.bytes == sum(path.stat().st_size for path in left) < before
    while (item := store.read()) is not None:
        read.append(item)
    assert lines(read) == list(range(1, 201))
    assert store.events == store.bytes == 0
    assert spill_folders(tmp_path) == []  # the folder goes with the backlog


def test_the_limit_bounds_the_disk_used(tmp_path: Path) -> None:
    store = SpillStore(10_000, parent=str(tmp_path))
    written = 0
    while True:
        took = store.append(parcel(written + 1, 50, width=30))
        written += took
        if took < 50:
            break
    assert 0 < written < 10_000 // 30
    [folder] = spill_folders(tmp_path)
    on_disk = sum(path.stat().st_size for path in folder.iterdir())
    assert on_disk == store.bytes <= 10_000
    assert on_disk > 10_000 - 100  # filled up to less than an event's record
    assert store.append(parcel(written + 1, 1, width=30)) == 0
    items = []
    while (item := store.read()) is not None:
        items.append(item)
    assert lines(items) == list(range(1, written + 1))


def test_a_failed_append_leaves_the_store_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write_all = spill._write_all

    def half_then_full(fd: int, data: bytes) -> None:
        os.write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    store = SpillStore(1 << 20, parent=str(tmp_path))
    assert store.append(parcel(1, 3)) == 3
    monkeypatch.setattr(spill, "_write_all", half_then_full)
    with pytest.raises(OSError):
        store.append(parcel(4, 3))
    monkeypatch.setattr(spill, "_write_all", real_write_all)
    assert store.events == 3
    assert store.append(parcel(4, 3)) == 3  # after the failed one, not after its half
    items = [store.read(), store.read()]
    assert lines([item for item in items if item is not None]) == [1, 2, 3, 4, 5, 6]
    assert store.read() is None


def test_discard_removes_the_folder(tmp_path: Path) -> None:
    store = SpillStore(1 << 20, parent=str(tmp_path))
    store.append(parcel(1, 5))
    assert len(spill_folders(tmp_path)) == 1
    store.discard()
    assert spill_folders(tmp_path) == []
    assert store.read() is None and store.events == 0


def test_an_unreadable_segment_loses_its_own_events_only(tmp_path: Path) -> None:
    store = SpillStore(1 << 20, segment_bytes=100, parent=str(tmp_path))
    for number in range(3):  # one parcel a segment
        store.append(parcel(number * 4 + 1, 4, width=30))
    [folder] = spill_folders(tmp_path)
    second = sorted(folder.iterdir())[1]
    second.write_bytes(second.read_bytes()[:50])
    first = store.read()
    assert first is not None and lines([first]) == [1, 2, 3, 4]
    with pytest.raises(SpillLost) as lost:
        store.read()
    assert lost.value.events == 4 and str(second) in lost.value.detail
    third = store.read()
    assert third is not None and lines([third]) == [9, 10, 11, 12]
    assert store.read() is None
    assert spill_folders(tmp_path) == []


# --- the queue ------------------------------------------------------------------------------


class Letters:
    """A queue's rejected events, as (reason, line)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    def __call__(self, reason: str, detail: str, parcels: list[Parcel]) -> None:
        self.seen.extend((reason, number) for number in lines(parcels))


def spill_queue(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    buffer: int = 10,
    spill_max_bytes: int = 1 << 20,
    **options: object,
) -> tuple[ConsumerQueue, Letters]:
    monkeypatch.setenv("EVROUTE_SPILL_DIR", str(tmp_path))
    letters = Letters()
    queue = ConsumerQueue(
        QueueSettings(buffer=buffer, on_full="spill", spill_max_bytes=spill_max_bytes),
        ConsumerStats(),
        letters,
        **options,  # type: ignore[arg-type]
    )
    return queue, letters


class Reader(threading.Thread):
    """A consumer's writer: takes batches and records their line numbers."""

    def __init__(self, queue: ConsumerQueue, pause: Callable[[], None] = lambda: None) -> None:
        super().__init__(daemon=True)
        self.queue = queue
        self.pause = pause
        self.lines: list[int] = []

    def run(self) -> None:
        while (batch := self.queue.get_batch(lambda batch: None, max_events=64)) is not None:
            self.lines.extend(lines(batch))
            self.queue.stats.delivered += len(lines(batch))
            self.pause()

    def finish(self) -> list[int]:
        self.join(BOUND_S)
        assert not self.is_alive()
        return self.lines


def put_in_thread(queue: ConsumerQueue, parcels: list[Parcel]) -> threading.Thread:
    thread = threading.Thread(target=lambda: [queue.put(item) for item in parcels], daemon=True)
    thread.start()
    return thread


def sizes(total: int) -> Iterator[tuple[int, int]]:
    """(first line, events) of parcels of 1 to 37 events, `total` events in all."""
    first = 1
    while first <= total:
        count = min(1 + first * 7 % 37, total - first + 1)
        yield first, count
        first += count


def test_the_router_does_not_wait_for_a_stuck_reader_while_the_spill_has_room(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue, _ = spill_queue(tmp_path, monkeypatch)
    putter = put_in_thread(queue, [parcel(first, count) for first, count in sizes(5000)])
    putter.join(BOUND_S)  # nobody reads: with `block` this would never return
    assert not putter.is_alive()
    assert queue.stats.spilled == 5000 - 10
    assert len(spill_folders(tmp_path)) == 1
    queue.close()
    reader = Reader(queue)
    reader.start()
    assert reader.finish() == list(range(1, 5001))
    assert spill_folders(tmp_path) == []


def test_order_is_kept_from_memory_to_disk_and_back_with_a_concurrent_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue, letters = spill_queue(tmp_path, monkeypatch, buffer=50)
    go = threading.Event()
    taken = 0

    def slow_at_first() -> None:
        nonlocal taken
        taken += 1
        if taken == 2:
            go.wait(BOUND_S)  # stuck a while: what comes meanwhile goes to disk
        elif taken % 7 == 0:
            time.sleep(0.002)  # then slower than the router now and again: to disk, back

    reader = Reader(queue, slow_at_first)
    reader.start()
    all_parcels = [parcel(first, count) for first, count in sizes(20_000)]
    for item in all_parcels[:200]:
        queue.put(item)
    spilled_while_stuck = queue.stats.spilled
    go.set()
    for item in all_parcels[200:]:
        queue.put(item)
    queue.close()
    assert reader.finish() == list(range(1, 20_001))
    assert spilled_while_stuck > 0
    assert queue.stats.enqueued == queue.stats.delivered == 20_000
    assert letters.seen == []
    assert spill_folders(tmp_path) == []


def test_a_full_spill_blocks_the_router_until_the_reader_frees_room(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue, _ = spill_queue(tmp_path, monkeypatch, spill_max_bytes=8_000)
    putter = put_in_thread(queue, [parcel(first, count, 20) for first, count in sizes(3000)])
    putter.join(0.5)
    assert putter.is_alive()  # blocked: the spill is full and nobody reads
    [folder] = spill_folders(tmp_path)
    assert 0 < sum(path.stat().st_size for path in folder.iterdir()) <= 8_000
    assert queue.stats.spilled < 8_000 // 20
    reader = Reader(queue)
    reader.start()
    putter.join(BOUND_S)
    assert not putter.is_alive()
    queue.close()
    assert reader.finish() == list(range(1, 3001))
    assert queue.stats.spilled > 8_000 // 20  # the spill filled more than once
    assert spill_folders(tmp_path) == []


def test_a_full_spill_gives_up_as_block_does_when_shutdown_runs_out_of_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out_of_time = threading.Event()
    queue, letters = spill_queue(
        tmp_path, monkeypatch, spill_max_bytes=4_000, out_of_time=out_of_time.is_set
    )
    putter = put_in_thread(queue, [parcel(1, 1000, 20)])
    putter.join(0.5)
    assert putter.is_alive()
    out_of_time.set()
    putter.join(BOUND_S)
    assert not putter.is_alive()
    kept = lines(queue.take_all())
    shutdown = [number for reason, number in letters.seen if reason == "shutdown"]
    assert kept + shutdown == list(range(1, 1001))  # the oldest kept, nothing lost
    assert 10 < len(kept) < 4_000 // 20
    assert spill_folders(tmp_path) == []


@pytest.mark.parametrize("how", ["fail", "take_all", "end"])
def test_settling_a_queue_includes_what_it_spilled_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    queue, letters = spill_queue(tmp_path, monkeypatch)
    putter = put_in_thread(queue, [parcel(first, count) for first, count in sizes(500)])
    putter.join(BOUND_S)
    assert not putter.is_alive() and queue.stats.spilled == 490
    stats = queue.stats
    if how == "fail":
        queue.fail("it broke")
        assert letters.seen == [("delivery_failed", n) for n in range(1, 501)]
        assert stats.dead_lettered == 500
        queue.put(parcel(501, 3))  # what comes later goes the same way
        assert letters.seen[-3:] == [("delivery_failed", n) for n in (501, 502, 503)]
    elif how == "take_all":
        assert lines(queue.take_all()) == list(range(1, 501))
        assert letters.seen == []
        queue.put(parcel(501, 3))  # memory again, not behind a backlog that is gone
        assert queue.stats.spilled == 490
        assert lines(queue.take_all()) == [501, 502, 503]
    else:
        queue.end()  # the reader left: counted, not read back
        assert stats.dropped == stats.dropped_by_reader == 500
        assert letters.seen == []
    assert spill_folders(tmp_path) == []


def test_a_spill_folder_that_cannot_be_made_means_blocking_with_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warnings: list[str] = []
    queue, _ = spill_queue(tmp_path / "missing", monkeypatch, name="slow", warn=warnings.append)
    putter = put_in_thread(queue, [parcel(first, count) for first, count in sizes(500)])
    putter.join(0.5)
    assert putter.is_alive()  # no spill: held up as `block` would be
    assert len(warnings) == 1  # said at once, not once the router is free again
    assert "consumer 'slow': cannot spill" in warnings[0] and "EVROUTE_SPILL_DIR" in warnings[0]
    reader = Reader(queue)
    reader.start()
    putter.join(BOUND_S)
    queue.close()
    assert reader.finish() == list(range(1, 501))
    assert queue.stats.spilled == 0 and len(warnings) == 1


def test_a_disk_full_while_spilling_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = 0
    real_write_all = spill._write_all

    def fill_up(fd: int, data: bytes) -> None:
        nonlocal writes
        writes += 1
        if writes < 5:
            return real_write_all(fd, data)
        os.write(fd, data[: len(data) // 2])  # part of the record went out
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(spill, "_write_all", fill_up)
    warnings: list[str] = []
    queue, letters = spill_queue(tmp_path, monkeypatch, warn=warnings.append)
    putter = put_in_thread(queue, [parcel(first, count, 20) for first, count in sizes(2000)])
    putter.join(0.5)
    assert putter.is_alive()  # four parcels on disk, then blocked
    assert len(warnings) == 1 and "No space left on device" in warnings[0]
    reader = Reader(queue)
    reader.start()
    putter.join(BOUND_S)
    queue.close()
    assert reader.finish() == list(range(1, 2001))  # the half-written record was not read
    assert writes == 5 and letters.seen == []
    assert spill_folders(tmp_path) == []


@settings(max_examples=200, deadline=None)
@given(
    buffer=st.integers(1, 6),
    buffer_bytes=st.integers(1, 60),
    operations=st.lists(
        st.one_of(
            st.tuples(st.just("put"), st.lists(st.integers(0, 12), min_size=1, max_size=8)),
            st.tuples(st.just("get"), st.integers(1, 10)),
        ),
        max_size=40,
    ),
)
def test_a_spilling_queue_gives_what_it_got_in_order(
    buffer: int, buffer_bytes: int, operations: list[tuple[str, object]]
) -> None:
    """Against a list: any mix of puts and takes gives the same events in the same order,
    with memory held to its bounds, whatever went through the disk."""
    model: list[bytes] = []
    got: list[bytes] = []
    letters = Letters()
    # The spill always has room here, so a put never has to wait: were it to, out_of_time
    # makes it give up (as shutdown letters) rather than hang. A take that would wait
    # for events that were lost is ended by the watchdog closing the queue.
    queue = ConsumerQueue(
        QueueSettings(buffer, buffer_bytes, "spill"), ConsumerStats(), letters, lambda: True
    )
    watchdog = threading.Timer(5, queue.close)
    watchdog.start()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(spill, "SEGMENT_BYTES", 300)  # segments rotate
        patch.setenv("EVROUTE_SPILL_DIR", tempfile.gettempdir())
        first = 1
        for operation, argument in operations:
            if operation == "put":
                assert isinstance(argument, list)
                payloads = [b"%d" % (first + n) + b"x" * size for n, size in enumerate(argument)]
                queue.put(Parcel("in", ("r",), first, payloads, list(range(len(payloads))), 0))
                model.extend(payloads)
                first += len(payloads)
            elif len(got) < len(model):  # a take waits for events: only when there are some
                assert isinstance(argument, int)
                batch = queue.get_batch(lambda batch: None, argument)
                assert batch
                got.extend(payload for item in batch for payload in item.payloads)
            assert queue._events <= buffer or len(queue._parcels) == 1
            assert queue._bytes <= buffer_bytes or queue._events == 1
        queue.close()
        while (batch := queue.get_batch(lambda batch: None)) is not None:
            got.extend(payload for item in batch for payload in item.payloads)
    watchdog.cancel()
    assert letters.seen == []
    assert got == model
    assert queue.stats.enqueued == len(model)
    assert queue._spill is None or queue._spill.folder is None


def test_spill_is_the_default_and_spill_max_bytes_is_read(tmp_path: Path) -> None:
    from evroute.loading import check_config

    path = write_config(
        tmp_path,
        """
        version: 1
        defaults: {spill_max_bytes: 2MiB}
        consumers:
          a: {file: a.jsonl}
          b: {file: b.jsonl, on_full: spill, spill_max_bytes: 3KiB}
        routes: [{name: all, to: [a, b]}]
        """,
    )
    config, issues = check_config(path, environ={})
    assert issues == [] and config is not None
    assert config.consumers["a"].queue.on_full == "spill"
    assert config.consumers["a"].queue.spill_max_bytes == 2 << 20
    assert config.consumers["b"].queue.spill_max_bytes == 3 << 10


# --- a real run -----------------------------------------------------------------------------

STOP_MYSELF = """
import os, shutil, signal, sys
open("stopped.pid", "w").write(str(os.getpid()))
os.kill(os.getpid(), signal.SIGSTOP)  # stopped before reading anything
shutil.copyfileobj(sys.stdin.buffer, open("stopped.jsonl", "wb"))
"""


def process_state(pid: int) -> str:
    # the state follows the command name, which is in parentheses
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]


def test_a_stopped_consumer_spills_and_holds_up_no_one(tmp_path: Path) -> None:
    (tmp_path / "stop_myself.py").write_text(STOP_MYSELF)
    config = write_config(
        tmp_path,
        f"""
        version: 1
        defaults: {{buffer: 100}}
        consumers:
          first: {{command: [sh, -c, "exec cat > first.jsonl"]}}
          stopped: {{command: [{json.dumps(sys.executable)}, stop_myself.py]}}
          second: {{command: [sh, -c, "exec cat > second.jsonl"]}}
        routes: [{{name: all, to: [first, stopped, second]}}]
        """,
    )
    count = 50_000
    (tmp_path / "in.jsonl").write_bytes(order_lines(count))
    stats_path = tmp_path / "stats.json"
    spill_parent = tmp_path / "spill"
    spill_parent.mkdir()
    process = subprocess.Popen(
        [*EVROUTE, "run", str(config), str(tmp_path / "in.jsonl"), "--stats-json", str(stats_path)],
        stderr=subprocess.PIPE,
        env=environment({"EVROUTE_SPILL_DIR": str(spill_parent)}),
    )
    pid: int | None = None
    try:
        # the others get everything while the stopped one has read nothing
        first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
        wait_for(lambda: lines_in(first) >= count, BOUND_S, "every event in first.jsonl")
        wait_for(lambda: lines_in(second) >= count, BOUND_S, "every event in second.jsonl")
        pid = int((tmp_path / "stopped.pid").read_text())
        assert process_state(pid) == "T"
        assert process.poll() is None  # waiting for the stopped one
        [folder] = spill_folders(spill_parent)
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert {stat.S_IMODE(path.stat().st_mode) for path in folder.iterdir()} == {0o600}
        os.kill(pid, signal.SIGCONT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
        if pid is not None and process.returncode != 0:  # it may still be stopped
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert process.returncode == 0, stderr.decode()
    assert (tmp_path / "stopped.jsonl").read_bytes() == order_lines(count)
    assert (tmp_path / "first.jsonl").read_bytes() == order_lines(count)
    stats = read_stats(stats_path)
    assert stats["consumers"]["stopped"]["spilled"] > 0
    assert stats["consumers"]["stopped"]["delivered"] == count
    assert spill_folders(spill_parent) == []

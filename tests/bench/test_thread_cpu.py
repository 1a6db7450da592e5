"""The benchmarks' per-thread CPU reading (bench/sidecar_process.py ThreadCpu)."""

from __future__ import annotations

import os
import threading
import time

from bench.sidecar_process import ThreadCpu


def test_since_splits_the_main_thread_from_the_others_and_never_goes_negative():
    earlier = ThreadCpu(pid=20, ran_ns={20: 1_000, 11: 500, 12: 700})
    later = ThreadCpu(pid=20, ran_ns={20: 4_000, 11: 900, 13: 250})  # 12 ended, 13 started

    assert later.since(earlier) == (3_000, 400 + 250)


def test_a_busy_thread_counts_among_the_others_and_not_as_the_main_thread():
    spun, release = threading.Event(), threading.Event()

    def spin() -> None:
        began = time.thread_time()
        while time.thread_time() - began < 0.02:  # 20 ms of this thread's CPU
            pass
        spun.set()
        release.wait()  # alive while the main thread reads: an ended thread is not counted

    before = ThreadCpu.read(os.getpid())
    worker = threading.Thread(target=spin)
    worker.start()
    assert spun.wait(timeout=60)
    after = ThreadCpu.read(os.getpid())
    release.set()
    worker.join()

    main, others = after.since(before)
    assert worker.native_id in after.ran_ns
    assert others >= 20_000_000 > main  # the main thread only waited

"""A daemon-shaped process for the kill -9 test: the recorded engine writing into the store.

`python -m tests.store_writer_child DB` runs 4 recorded GPUs at 4 ticks a second into the
database DB and prints `tick TIMESTAMP GPUS` after each snapshot is handed to the store, until
it is killed. The test kills it with SIGKILL at random moments and reads the file.
"""

from __future__ import annotations

import dataclasses
import sys
import threading

from gpuwatch import config
from gpuwatch.assemble import build_engine
from gpuwatch.store import open_store

TICK_SECONDS = 0.25


def main(db: str) -> None:
    base = config.Settings()
    settings = dataclasses.replace(
        base,
        nvml=dataclasses.replace(base.nvml, interval_seconds=TICK_SECONDS, slow_interval_seconds=0.5),
        daemon=dataclasses.replace(base.daemon, database=db),
        demo=dataclasses.replace(base.demo, gpus=4),
    )
    store = open_store(settings)
    engine = build_engine(settings, demo=True)
    store.attach(engine)  # subscribed first: each snapshot is submitted before it is printed
    engine.subscribe(lambda s: print(f"tick {s.timestamp!r} {len(s.gpus)}", flush=True))
    engine.start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1])

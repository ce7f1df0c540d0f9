"""The NVML collector: GPU facts, samples, processes and events from pynvml.

Place in the flow: pynvml (or the demo's recorded stand-in) → `gateway` (the one choke point
for every call) → `readers` on each GPU's `workers` (raw values cleaned by `values`) → frozen
`readings` kept in each GPU's `tracked` record → `view`, which the engine reads each tick.
`lifecycle` starts the library and opens, loses, retries and adds GPUs; `events` turns NVML's
XID/ECC events into `model.Event`s; `collector.NvmlCollector` is the facade the engine sees.
"""

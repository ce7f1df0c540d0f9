"""The NVML collector: GPU facts, samples, processes and events from pynvml.

Place in the flow: pynvml (or the demo's recorded stand-in) → `gateway` (the one choke point
for every call) → the collector's readers → a view the engine reads each tick.
"""

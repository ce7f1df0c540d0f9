"""The Triton collector: per-model queue, batch and latency statistics from Triton's HTTP APIs.

Place in the flow: Triton's endpoints → `poll` (one poll's requests, bounded by `http`, each
body read by its `parse_*` module) → `models` (per-model bookkeeping over `derive`'s formulas)
→ `poller` (each server's state and status) → `collector`, the view the engine reads each tick.
See docs/triton.md.
"""

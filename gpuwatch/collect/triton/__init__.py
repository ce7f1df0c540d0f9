"""The Triton collector: per-model queue, batch and latency statistics from Triton's HTTP APIs.

Place in the flow: Triton's endpoints → `http` (bounded fetches) → the parsers → `derive`
(totals, resets, per-interval figures) → a view of each server the engine reads each tick.
See docs/triton.md.
"""

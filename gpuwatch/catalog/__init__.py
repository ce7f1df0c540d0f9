"""The figure catalog: every figure gpuwatch reads, declared once, and the NVML code tables.

Place in the flow: beside the data model. `/metrics`, the store's columns, history, the API's
and the CLI's label checks and docs/metrics.md all derive from these declarations.
"""

"""gpuwatch: GPU and Triton monitoring for inference nodes.

The flow (docs/architecture.md): collectors (`gpuwatch.collect`) turn NVML, Triton and the host
into the data model (`gpuwatch.model`); the engine (`gpuwatch.engine`) builds one immutable
snapshot per tick and fans it out to the store (`gpuwatch.store`), the Prometheus exporter and
JSON API (`gpuwatch.serve`) and the terminal dashboard (`gpuwatch.tui`).
"""

__version__ = "0.1.0"

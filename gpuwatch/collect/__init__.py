"""Collectors: each turns one source (NVML, Triton, the host) into the plain data of
`gpuwatch.model`. They never format, store or serve; the engine runs them on their cadences."""

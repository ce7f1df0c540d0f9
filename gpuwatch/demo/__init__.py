"""The demo wing: recorded stand-ins for NVML, Triton and the host, and their fault scenarios.

Place in the flow: beside `gpuwatch.collect`, never inside it. `--demo` and the tests run the
real collectors over these sources (the recorded NVML answers at the pynvml boundary, the
recorded Triton at the HTTP transport), so everything above the sources is the production code.
`nvml` and `triton` are the recorded sources, `triton_faults` and `scenarios` the faults,
`processes` the recorded host, `assemble` builds the demo's engine, `data/` holds the captures.
"""

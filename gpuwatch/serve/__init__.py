"""The daemon's HTTP faces: Prometheus /metrics and the JSON API, over the engine's latest
snapshot and the store; no request ever reaches NVML or Triton."""

"""`capplan serve`: the analyses over HTTP (JSON API, /metrics, probes, the HTML report).

One direction: runner (uvicorn, signals, logging) -> app (routes, errors, auth, request
metrics) -> endpoints, pages, metrics, probes -> answers and the result cache -> the analyses'
public functions. No module here imports a private name of another, and nothing below imports
anything above it. This file imports nothing, so that `capplan serve` can check its options
(config, auth, termination) before loading the web stack and the analyses. See docs/serve.md.
"""

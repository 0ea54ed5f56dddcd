"""The router: an OpenAI-compatible gateway that splits each request over a service's prefill and decode workers.

Rooms: ``app`` (the HTTP face and the request path), ``policy`` (worker choice: weighted least
outstanding work, prefix affinity), ``breaker`` (per-worker circuit breakers), ``plan`` (the routing
plan, its sources and atomic swaps), ``records`` (request records and their batched delivery),
``spool`` (records on disk while the control plane is away), ``metrics`` (Prometheus). Run it with
``python -m agents.router``; the node agent runs it through ``agents.engines.router``.
"""

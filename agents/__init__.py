"""Cleave's node side: the node agent, the engines it runs, GPU readings, and the router.

Pure Python: it may import ``profiler`` but never Django, Celery or ``controlplane``; it talks to the
control plane only over HTTP.
"""

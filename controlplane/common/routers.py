"""The API router: resources answer with or without a trailing slash (`/plans/` and `/plans/1/approve`)."""

from __future__ import annotations

from rest_framework.routers import SimpleRouter


class OptionalSlashRouter(SimpleRouter):
    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"

"""The Flask app: staff pages, the JSON API under /api/v1 (application factory + blueprints)."""

from web.app import create_app

__all__ = ["create_app"]

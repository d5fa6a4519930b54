"""The KATO HTTP service: a FastAPI app over :class:`kato.core.Kato` (see ``create_app``)."""

from kato.service.app import create_app, create_app_from_env

__all__ = ["create_app", "create_app_from_env"]

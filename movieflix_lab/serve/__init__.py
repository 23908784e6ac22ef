"""The serve app: FastAPI, one router per resource."""

from movieflix_lab.serve.app import create_app

__all__ = ["create_app"]

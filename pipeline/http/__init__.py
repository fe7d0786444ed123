"""Chronicle's HTTP API and web page (``chronicle serve``): the language-neutral way in."""

from .app import create_app
from .config import HttpSettings

__all__ = ["HttpSettings", "create_app"]

"""Accessors for the per-server objects the routers share (kept on ``app.state``)."""

from __future__ import annotations

from fastapi import Request

from ..api import Chronicle
from ..sites import SiteResolver
from .auth import Authenticator
from .config import HttpSettings
from .readmodel import ReadModel


def chronicle(request: Request) -> Chronicle:
    return request.app.state.chronicle


def read_model(request: Request) -> ReadModel:
    return request.app.state.read_model


def settings(request: Request) -> HttpSettings:
    return request.app.state.settings


def sites(request: Request) -> SiteResolver:
    return request.app.state.sites


def authenticator(request: Request) -> Authenticator:
    return request.app.state.authenticator

"""The web page at ``/``: what the pipeline did, for editors (server-rendered, a little JS)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from ...api import Chronicle
from ...sites import SiteResolver
from .. import deps, failures
from ..auth import Principal, page_principal
from ..readmodel import ReadModel
from .admin import status_report

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent.parent / "templates"))
GALLERY_SIZE = 24

router = APIRouter(include_in_schema=False)


def _human_bytes(size: int | None) -> str:
    value = float(size or 0)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


TEMPLATES.env.filters["bytes"] = _human_bytes


@router.get("/", response_class=HTMLResponse)
def index(request: Request, chronicle: Chronicle = Depends(deps.chronicle),
          read_model: ReadModel = Depends(deps.read_model), sites: SiteResolver = Depends(deps.sites),
          caller: Principal = Depends(page_principal)) -> HTMLResponse:
    """Shows what the caller's key allows: without one (auth on) only the key field; a site-restricted
    key its sites' images and failures, not the installation-wide pipeline status."""
    auth = deps.authenticator(request).auth_on()
    context: dict[str, Any] = {"auth": auth, "locked": not caller.allows("read"), "status": None, "lag": 0,
                               "images": [], "failures": [], "caller": caller,
                               "can_write": caller.allows("write")}
    if context["locked"]:
        return TEMPLATES.TemplateResponse(request, "index.html", context)
    if caller.unrestricted:
        status = status_report(chronicle, read_model)
        context["status"] = status
        context["lag"] = max([p["lag"] for p in status["projections"].values()]
                             + [s["lag"] for s in status["subscribers"].values()] or [0])
    context["images"] = read_model.recent_images(limit=GALLERY_SIZE,
                                                 sites=None if caller.unrestricted else caller.sites)
    context["failures"] = failures.failures_json(deps.settings(request), limit=50, include_resolved=False,
                                                 visible=failures.visible_to(caller, sites))
    return TEMPLATES.TemplateResponse(request, "index.html", context)

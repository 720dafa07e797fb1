"""The desk's entry page: what runs, and where each user goes next."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template
from flask_login import login_required

bp = Blueprint(
    "desk", __name__, template_folder="templates", static_folder="static", static_url_path="/desk/static"
)


@bp.get("/")
@login_required  # type: ignore[untyped-decorator]
def index() -> str:
    ext = current_app.extensions["hotline"]
    settings = ext["settings"]
    checks = ext["health"]()
    return render_template(
        "desk/index.html", **checks, sip_address=f"{settings.sip_host}:{settings.sip_port}"
    )

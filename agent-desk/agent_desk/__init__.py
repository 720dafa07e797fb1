"""The agent desk, supervisor wallboard and administration pages (Flask blueprints).

Talks to the softswitch only through Redis commands and events; never imports `ivr`.
"""

from __future__ import annotations

from agent_desk.admin import admin_bp
from agent_desk.admin_menu import menu_bp
from agent_desk.admin_org import org_bp
from agent_desk.admin_prompts import prompts_bp
from agent_desk.agent import agent_bp
from agent_desk.callbacks import callbacks_bp
from agent_desk.catalog_admin import catalog_bp
from agent_desk.centre import centre_bp
from agent_desk.knowledge import knowledge_bp
from agent_desk.reports import reports_bp
from agent_desk.transcript import transcript_bp
from agent_desk.views import bp
from agent_desk.wallboard import wall_bp

BLUEPRINTS = (
    bp,
    agent_bp,
    wall_bp,
    reports_bp,
    admin_bp,
    knowledge_bp,
    centre_bp,
    catalog_bp,
    org_bp,
    prompts_bp,
    menu_bp,
    transcript_bp,
    callbacks_bp,
)

__all__ = ["BLUEPRINTS"]

"""The agent desk, supervisor wallboard and administration pages (Flask blueprints).

Talks to the softswitch only through Redis commands and events; never imports `ivr`.
"""

from __future__ import annotations

from agent_desk.views import bp

__all__ = ["bp"]

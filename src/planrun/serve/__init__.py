"""``planrun serve``: run plans on their triggers (schedules, intervals, file and
git changes) in one long-running process, on the same engine and store.

``triggers.py`` (the pure arithmetic) says when; ``serve.sources`` waits for it;
``serve.runner`` applies ``on_overlap`` and starts ordinary runs through
``api.execute``; ``serve.service`` loads the plans, holds the state dir's serve lock
and handles signals and reloads.
"""

from __future__ import annotations

from .service import serve, take_serve_lock

__all__ = ["serve", "take_serve_lock"]

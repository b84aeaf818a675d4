"""The `router` section of `ouzel/status`: each profile's backend and health, each task's
route now, and the recent routing notices."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ouzel.inference.openai_compat import OpenAICompatBackend
from ouzel.inference.profiles import configured_profiles, model_label, profile_is_remote
from ouzel.inference.selection import TASK_KINDS, skip_reason
from ouzel.server.settings import Settings

if TYPE_CHECKING:
    from ouzel.inference.router import Router


def router_status(router: Router, settings: Settings) -> dict[str, Any]:
    """The `router` section of `ouzel/status`: profiles, routes, notices."""
    profiles: dict[str, Any] = {}
    for name, profile in configured_profiles(settings).items():
        entry = router.entry(name, profile, settings)
        remote = profile_is_remote(profile)
        profiles[name] = {
            "backend": profile.backend,
            "endpoint": entry.backend.base_url
            if isinstance(entry.backend, OpenAICompatBackend)
            else None,
            "remote": remote,
            "model": model_label(entry),
            "usable": skip_reason(entry, remote, settings) is None,
            "skipReason": skip_reason(entry, remote, settings),
            **entry.health.snapshot(),
        }
    routes: dict[str, Any] = {}
    for task in TASK_KINDS:
        plan = router.plan(settings, task)
        chosen = next((c.name for c in plan if c.skip is None), None)
        served = router.served.get(task)
        routes[task] = {
            "order": [c.name for c in plan],
            "now": chosen,
            "skipped": {c.name: c.skip for c in plan if c.skip and not c.silent},
            "lastServedBy": served.profile if served else None,
            "lastServedAgoS": round(router.clock() - served.at, 1) if served else None,
        }
    return {
        "allowRemote": settings.privacy.allow_remote,
        "allowFallback": settings.routing.allow_fallback,
        "profiles": profiles,
        "routes": routes,
        "notices": list(router.recent_notices),
    }

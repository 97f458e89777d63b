"""The settings the request path reads, copied once per process.

Reading ``django.conf.settings.X`` goes through ``LazySettings.__getattribute__`` (a few
microseconds each); a cached answer reads some twenty settings and costs under 100 us in all,
so the request path reads this copy instead. It is rebuilt when a setting changes (tests).
"""

from __future__ import annotations

import types

from django.conf import settings
from django.core.signals import setting_changed

#: Django's own settings the request path reads (besides every STRATA_ setting).
DJANGO_SETTINGS = ("ALLOWED_HOSTS", "DEBUG", "SECRET_KEY")
_conf: types.SimpleNamespace | None = None


def conf() -> types.SimpleNamespace:
    global _conf
    if _conf is None:
        names = [n for n in dir(settings) if n.startswith("STRATA_")] + list(DJANGO_SETTINGS)
        _conf = types.SimpleNamespace(**{name: getattr(settings, name) for name in names})
    return _conf


def _reset(**_kwargs) -> None:
    global _conf
    _conf = None


setting_changed.connect(_reset)

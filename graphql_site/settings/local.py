"""Local development: ``strata serve`` and ``make demo``. GraphiQL and introspection on."""

from .base import *  # noqa: F401,F403
from .base import env_bool

DEBUG = env_bool("DJANGO_DEBUG", False)
# A local-only key; production refuses to start without DJANGO_SECRET_KEY.
SECRET_KEY = SECRET_KEY or "strata-local-development-key-not-for-production"  # noqa: F405
STRATA_GRAPHQL_INTROSPECTION = env_bool("STRATA_GRAPHQL_INTROSPECTION", True)
STRATA_GRAPHQL_SUGGESTIONS = env_bool("STRATA_GRAPHQL_SUGGESTIONS", True)
STRATA_GRAPHIQL = env_bool("STRATA_GRAPHIQL", True)
STRATA_SERVE_STATIC = env_bool("STRATA_SERVE_STATIC", True)

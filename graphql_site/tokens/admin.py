from django.contrib import admin, messages

from .models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """The admin lists, renames, deactivates, re-limits and expires tokens, but cannot add one.

    On purpose: only a hash of a token is stored, so a token exists in clear text exactly once,
    in the output of the command that creates it (``strata token create NAME``). An "add" form
    would have to show the secret in a web page, where it lands in the browser's history and
    cache and in screenshots. The admin's add view therefore answers 403.
    """

    list_display = ("name", "key_prefix", "is_active", "rate_limit_per_minute", "expires_at", "created_at")
    list_filter = ("is_active",)
    search_fields = ("name", "key_prefix")
    readonly_fields = ("key_prefix", "created_at")
    fields = ("name", "key_prefix", "is_active", "rate_limit_per_minute", "expires_at", "created_at")

    def has_add_permission(self, request):
        return False

    def changelist_view(self, request, extra_context=None):
        messages.info(request, "Tokens cannot be added here, on purpose: a token is shown in clear text "
                      "once, by `strata token create NAME` (only its hash is stored), so it never sits in a "
                      "web page. Edit, expire or deactivate tokens here; `strata token revoke NAME` does too.")
        return super().changelist_view(request, extra_context)

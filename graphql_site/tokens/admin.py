from django.contrib import admin

from .models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are created with ``manage.py create_api_token`` (the only place a token is shown);
    the admin can rename, deactivate and re-limit them."""

    list_display = ("name", "key_prefix", "is_active", "rate_limit_per_minute", "created_at")
    list_filter = ("is_active",)
    search_fields = ("name", "key_prefix")
    readonly_fields = ("key_prefix", "created_at")
    fields = ("name", "key_prefix", "is_active", "rate_limit_per_minute", "created_at")

    def has_add_permission(self, request):
        return False

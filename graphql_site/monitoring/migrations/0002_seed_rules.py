"""One row per default alert rule, overriding nothing: the admin then lists every rule."""

from django.db import migrations


def seed(apps, schema_editor):
    from strata_monitor.rules import DEFAULT_RULES

    AlertRule = apps.get_model("strata_monitoring", "AlertRule")
    for rule in DEFAULT_RULES:
        AlertRule.objects.get_or_create(name=rule.name, defaults={"enabled": True, "severity": "", "params": {}})


class Migration(migrations.Migration):
    dependencies = [("strata_monitoring", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]

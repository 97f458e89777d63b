"""Strata's monitoring logic, shared by the CLI (``strata check``) and the Django site.

* ``anomaly``: weekday-seasonal, robust anomaly detection on daily series, with explanations;
* ``rules``:   the default alert rules, admin overrides, evaluation to alerts;
* ``facts``:   what the rules read, as SQLAlchemy Core statements over the monitoring tables;
* ``report``:  the health report (status, alerts, sections) both ``strata check`` and the
  dashboards show;
* ``cost``:    BigQuery list prices, bytes scanned from DuckDB profiles, job labels;
* ``notify``:  alerts to the log and a Slack-compatible webhook, deduplicated and rate-limited
  (standard library only, so an Airflow callback can import it alone);
* ``lineage``: the dbt graph from dbt's manifest, with each node's freshness and test status.

It imports ``strata_core`` and neither ``strata`` (the CLI) nor ``graphql_site``.
"""

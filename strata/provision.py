"""``strata bq init``: create the production resources of ``strata_core/resources.py``.

BigQuery: the layer datasets (with default partition expirations) and the raw tables from the
contract (``beam_pipelines.bigquery.tables``). Pub/Sub: the topics and subscriptions, with
retention and the dead-letter policy. Every step is idempotent: what exists is left as it is
(reported as ``exists``), so the command is safe to rerun after adding a resource.

Pub/Sub clients use ``PUBSUB_EMULATOR_HOST`` when it is set (the emulator, in tests); BigQuery
uses ``endpoint`` when given (a loopback fake or emulator), else application default credentials.
"""

from __future__ import annotations

import datetime as dt

from strata_core import resources


def provision_bigquery(project: str, *, location: str | None = None, endpoint: str | None = None) -> list[str]:
    """Create the datasets and raw tables; returns one line per resource."""
    from beam_pipelines.bigquery.clients import make_client
    from beam_pipelines.bigquery.tables import ensure_datasets, ensure_tables

    client = make_client(project, endpoint)
    datasets = ensure_datasets(client, project, location)
    tables = ensure_tables(client, project, "raw", location)
    lines = [f"dataset {project}.{layer}: ready (default partition expiration "
             f"{(ds.default_partition_expiration_ms or 0) // 86_400_000 or 'none'} days)"
             for layer, ds in datasets.items()]
    lines += [f"table {project}.raw.{name}: ready (partitioning {t.time_partitioning.field if t.time_partitioning else 'none'}, "
              f"clustering {', '.join(t.clustering_fields or []) or 'none'})" for name, t in tables.items()]
    return lines


def provision_pubsub(project: str) -> list[str]:
    """Create the topics and subscriptions; returns one line per resource."""
    from google.api_core import exceptions
    from google.cloud import pubsub_v1
    from google.protobuf import duration_pb2

    def days(n: int):
        return duration_pb2.Duration(seconds=int(dt.timedelta(days=n).total_seconds()))

    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    lines = []
    try:
        for topic in resources.TOPICS:
            path = resources.topic_path(project, topic.name)
            try:
                publisher.create_topic(request={"name": path, "message_retention_duration": days(topic.retention_days),
                                                "labels": {"app": "strata"}})
                lines.append(f"topic {path}: created")
            except exceptions.AlreadyExists:
                lines.append(f"topic {path}: exists")
        for sub in resources.SUBSCRIPTIONS:
            path = resources.subscription_path(project, sub.name)
            request = {"name": path, "topic": resources.topic_path(project, sub.topic),
                       "ack_deadline_seconds": sub.ack_deadline_s,
                       "message_retention_duration": days(sub.retention_days),
                       "retain_acked_messages": False, "labels": {"app": "strata"}}
            if sub.dead_letter_topic:
                request["dead_letter_policy"] = {
                    "dead_letter_topic": resources.topic_path(project, sub.dead_letter_topic),
                    "max_delivery_attempts": sub.max_delivery_attempts}
            try:
                subscriber.create_subscription(request=request)
                lines.append(f"subscription {path}: created")
            except exceptions.AlreadyExists:
                lines.append(f"subscription {path}: exists")
    finally:
        subscriber.close()
    return lines

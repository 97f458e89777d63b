"""The production resources, named once: BigQuery datasets per layer, Pub/Sub topics and
subscriptions. ``strata bq init`` creates them, the templates, the DAG and docs/production.md
refer to them.

Expirations: raw tables keep 7 years (``schemas.BIGQUERY_LAYOUT``, set per table);
staging 7 years, curated and mart 2 years as dataset defaults, matching the dbt project's
``*_retention_days`` vars (a test checks they agree).
"""

from __future__ import annotations

import dataclasses
import re

#: A GCP project id (https://cloud.google.com/resource-manager/docs/creating-managing-projects).
PROJECT_ID_RE = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
RAW_RETENTION_DAYS = 7 * 365
CURATED_RETENTION_DAYS = 2 * 365


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    description: str
    #: Dataset default for new partitioned tables (days); ``None``: partitions never expire.
    default_partition_expiration_days: int | None


#: Layer -> dataset. The layers are the schema names in dbt and in the API's query layer.
DATASETS: dict[str, DatasetSpec] = {
    "raw": DatasetSpec("Strata raw layer: events, users, dead letters as ingested (Beam).",
                       RAW_RETENTION_DAYS),
    "staging": DatasetSpec("Strata staging layer: cleaned, deduplicated, sessionised (dbt).",
                           RAW_RETENTION_DAYS),
    "curated": DatasetSpec("Strata curated layer: per-user and per-event metrics, ML features (dbt).",
                           CURATED_RETENTION_DAYS),
    "mart": DatasetSpec("Strata marts: business metrics, user analytics, funnels, training sets (dbt).",
                        CURATED_RETENTION_DAYS),
}


@dataclasses.dataclass(frozen=True)
class TopicSpec:
    name: str
    description: str
    retention_days: int = 7


@dataclasses.dataclass(frozen=True)
class SubscriptionSpec:
    name: str
    topic: str
    description: str
    ack_deadline_s: int = 60
    retention_days: int = 7
    #: Messages not acked after this many deliveries go to ``dead_letter_topic``.
    dead_letter_topic: str | None = None
    max_delivery_attempts: int = 10


#: The collector publishes to ``events``; the streaming job reads ``events-ingest``. Messages the
#: job cannot even ack (it acks every message it turned into a row or a dead letter) go to
#: ``events-undeliverable`` after 10 attempts, and stay 7 days on its hold subscription.
#: ``dead-letters`` is the streaming job's ``--dead_letter_topic``: every pipeline dead letter,
#: with its original bytes, for alerting and replay (raw.dead_letters has them too).
TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec("events", "Events from the collector (one JSON event per message)."),
    TopicSpec("events-undeliverable", "Messages the streaming job could not ack after 10 deliveries."),
    TopicSpec("dead-letters", "Dead letters of the streaming job (original bytes + error attributes)."),
)
SUBSCRIPTIONS: tuple[SubscriptionSpec, ...] = (
    SubscriptionSpec("events-ingest", "events", "Read by the streaming ingest job (Dataflow).",
                     dead_letter_topic="events-undeliverable"),
    SubscriptionSpec("events-undeliverable-hold", "events-undeliverable",
                     "Keeps undeliverable messages for inspection and replay."),
    SubscriptionSpec("dead-letters-hold", "dead-letters", "Keeps pipeline dead letters for replay."),
)


def topic_path(project: str, name: str) -> str:
    return f"projects/{project}/topics/{name}"


def subscription_path(project: str, name: str) -> str:
    return f"projects/{project}/subscriptions/{name}"


def template_location(project: str, job: str) -> str:
    """Where Cloud Build publishes the Flex Template spec of ``job`` (``batch`` / ``stream``)."""
    return f"gs://{project}-strata-templates/templates/ingest_{job}.json"


def dataflow_temp_location(project: str) -> str:
    """Dataflow's temp location (also where the batch sink stages its BigQuery load files)."""
    return f"gs://{project}-strata-dataflow/tmp"

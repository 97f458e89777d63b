"""The DAGs' configuration, read from the environment when a DAG file is parsed.

Environment variables (Composer: set them in the environment's configuration):

==============================  ==============================================================
``STRATA_ORCHESTRATION_MODE``   ``gcp`` (default: the Google provider's operators) or ``local``
                                (BashOperators running the ``strata`` CLI; offline tests)
``STRATA_GCP_PROJECT``          project id (gcp)
``STRATA_GCP_REGION``           Dataflow / Cloud Run region (gcp; default europe-west1)
``STRATA_EVENTS_BUCKET``        bucket the producers drop event files into, one folder per hour:
                                ``gs://BUCKET/events/YYYY-MM-DD/HH/*`` (gcp)
``STRATA_BATCH_TEMPLATE``       gs:// path of the batch template spec (gcp; default the one
                                Cloud Build publishes)
``STRATA_DATAFLOW_SA``          worker service account of the batch job (gcp, optional)
``STRATA_TRANSFORM_JOB``        Cloud Run job running the transform image (gcp; default
                                ``strata-transform``)
``STRATA_CLI``                  the ``strata`` executable (local)
``STRATA_LOCAL_EVENTS_DIR``     local folder laid out like the events bucket (local)
``STRATA_ALERT_WEBHOOK_URL``    where failure alerts are posted (both; also the Airflow
                                Variable ``strata_alert_webhook_url``)
==============================  ==============================================================
"""

from __future__ import annotations

import dataclasses
import os

MODES = ("gcp", "local")


@dataclasses.dataclass(frozen=True)
class Config:
    mode: str
    project: str
    region: str
    events_bucket: str
    batch_template: str
    dataflow_service_account: str | None
    transform_job: str
    cli: str
    local_events_dir: str

    @property
    def target(self) -> str:
        """The dbt / data-version target of ``strata`` commands."""
        return "bigquery" if self.mode == "gcp" else "duckdb"


def load(environ=None) -> Config:
    env = os.environ if environ is None else environ
    mode = env.get("STRATA_ORCHESTRATION_MODE", "gcp")
    if mode not in MODES:
        raise ValueError(f"STRATA_ORCHESTRATION_MODE={mode!r}: expected one of {', '.join(MODES)}")
    project = env.get("STRATA_GCP_PROJECT", "")
    return Config(
        mode=mode,
        project=project,
        region=env.get("STRATA_GCP_REGION", "europe-west1"),
        events_bucket=env.get("STRATA_EVENTS_BUCKET", f"{project}-strata-events"),
        batch_template=env.get("STRATA_BATCH_TEMPLATE",
                               f"gs://{project}-strata-templates/templates/ingest_batch.json"),
        dataflow_service_account=env.get("STRATA_DATAFLOW_SA") or None,
        transform_job=env.get("STRATA_TRANSFORM_JOB", "strata-transform"),
        cli=env.get("STRATA_CLI", "strata"),
        local_events_dir=env.get("STRATA_LOCAL_EVENTS_DIR", ""),
    )

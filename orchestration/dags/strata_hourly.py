"""Hourly: the batch job over the hour's new event files, then the staging models.

Schedule: at minute 10 of every hour for the hour before (late uploads get 10 minutes).
"""

import datetime as dt

from airflow.sdk import DAG

from strata_airflow import config, steps

cfg = config.load()

with DAG(
    dag_id="strata_hourly",
    description="Batch ingest of the hour's files (Dataflow Flex Template), then dbt staging models",
    schedule="10 * * * *",
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args=steps.DEFAULT_ARGS,
    tags=["strata"],
) as dag:
    steps.wait_for_new_files(cfg) >> steps.ingest_batch(cfg) >> steps.transform("transform_staging", cfg, "tag:hourly")

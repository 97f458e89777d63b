"""Hourly: the batch job over the hour's new event files, then the staging models.

Schedule: at minute 10 of every hour for the hour before (late uploads get 10 minutes).
"""

from airflow.sdk import DAG

from strata_airflow import config, steps

cfg = config.load()

with DAG(
    dag_id="strata_hourly",
    description="Batch ingest of the hour's files (Dataflow Flex Template), then dbt staging models",
    schedule="10 * * * *",
    **steps.DAG_DEFAULTS,
) as dag:
    steps.wait_for_new_files(cfg) >> steps.ingest_batch(cfg) >> steps.transform("transform_staging", cfg, "tag:hourly")

"""Daily: the curated and mart models, source freshness, then the new data version.

The version is published last, so the API's caches turn over only once the marts are built and
the raw sources were found fresh.
"""

from airflow.sdk import DAG

from strata_airflow import config, steps

cfg = config.load()

with DAG(
    dag_id="strata_daily",
    description="dbt curated + mart models, source freshness, publish the data version",
    schedule="30 1 * * *",
    **steps.DAG_DEFAULTS,
) as dag:
    (steps.transform("transform_curated_mart", cfg, "tag:daily", publish=False)
     >> steps.source_freshness(cfg)
     >> steps.publish_data_version(cfg))

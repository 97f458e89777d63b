"""The DAGs' steps, each built for the configured mode: the Google provider's operators on
Composer, BashOperators running the ``strata`` CLI locally. The DAG files only name steps.

Every step is idempotent, so a retry or a rerun of a DAG run is safe:

* the batch job MERGEs on ``row_key`` (a rerun over the same hour's files adds no rows);
* dbt models rebuild whole ``event_date`` partitions;
* publishing a data version only invalidates caches.
"""

from __future__ import annotations

import datetime as dt
import shlex

from strata_airflow import alerts
from strata_airflow.config import Config

#: Every task: 3 retries, 5 min doubling to at most 1 h, then the failure alert.
DEFAULT_ARGS = {
    "owner": "strata",
    "retries": 3,
    "retry_delay": dt.timedelta(minutes=5),
    "retry_exponential_backoff": True,
    "max_retry_delay": dt.timedelta(hours=1),
    "on_failure_callback": alerts.notify_failure,
}

#: What both DAGs share: no backfill of missed runs (each run takes its own interval), one run
#: at a time.
DAG_DEFAULTS = {
    "start_date": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    "catchup": False,
    "max_active_runs": 1,
    "default_args": DEFAULT_ARGS,
    "tags": ["strata"],
}

#: The hour folder of a DAG run's data interval (Jinja, rendered by Airflow at run time).
HOUR_FOLDER = "events/{{ data_interval_start.strftime('%Y-%m-%d/%H') }}"


def _bash(task_id: str, cfg: Config, *args: str, **kwargs):
    from airflow.providers.standard.operators.bash import BashOperator

    return BashOperator(task_id=task_id, bash_command=shlex.join([cfg.cli, *args]), **kwargs)


def wait_for_new_files(cfg: Config):
    """Succeeds when the run's hour folder has files; skips the rest of the run when none came
    within 30 minutes (an hour without events is not a failure)."""
    if cfg.mode == "gcp":
        from airflow.providers.google.cloud.sensors.gcs import GCSObjectsWithPrefixExistenceSensor

        return GCSObjectsWithPrefixExistenceSensor(
            task_id="wait_for_new_files", bucket=cfg.events_bucket, prefix=HOUR_FOLDER + "/",
            mode="reschedule", poke_interval=120, timeout=30 * 60, soft_fail=True)
    from airflow.providers.standard.sensors.python import PythonSensor

    return PythonSensor(task_id="wait_for_new_files", python_callable=_any_file,
                        op_args=[f"{cfg.local_events_dir}/{HOUR_FOLDER}/*"],
                        poke_interval=5, timeout=60, soft_fail=True, mode="reschedule")


def _any_file(pattern: str) -> bool:
    import glob

    return bool(glob.glob(pattern))


def ingest_batch(cfg: Config):
    """The batch Flex Template over the hour's files."""
    if cfg.mode == "gcp":
        from airflow.providers.google.cloud.operators.dataflow import DataflowStartFlexTemplateOperator

        environment = {"tempLocation": f"gs://{cfg.project}-strata-dataflow/tmp"}
        if cfg.dataflow_service_account:
            environment["serviceAccountEmail"] = cfg.dataflow_service_account
        return DataflowStartFlexTemplateOperator(
            task_id="ingest_batch", project_id=cfg.project, location=cfg.region, wait_until_finished=True,
            body={"launchParameter": {
                "jobName": "strata-batch-{{ data_interval_start.strftime('%Y%m%d-%H') }}-{{ ti.try_number }}",
                "containerSpecGcsPath": cfg.batch_template,
                "parameters": {"input": f"gs://{cfg.events_bucket}/{HOUR_FOLDER}/*", "bq_project": cfg.project},
                "environment": environment}})
    return _bash("ingest_batch", cfg, "ingest", "batch", "--input", f"{cfg.local_events_dir}/{HOUR_FOLDER}/*")


def strata_command(task_id: str, cfg: Config, *args: str):
    """A ``strata`` command: on Composer an execution of the transform image's Cloud Run job
    (dbt never shares Composer's Python environment), locally the CLI."""
    if cfg.mode == "gcp":
        from airflow.providers.google.cloud.operators.cloud_run import CloudRunExecuteJobOperator

        return CloudRunExecuteJobOperator(
            task_id=task_id, project_id=cfg.project, region=cfg.region, job_name=cfg.transform_job,
            overrides={"container_overrides": [{"args": list(args)}]}, deferrable=False)
    return _bash(task_id, cfg, *args)


def transform(task_id: str, cfg: Config, selector: str, *, publish: bool = True):
    args = ["transform", "--target", cfg.target, "--select", selector]
    return strata_command(task_id, cfg, *args, *([] if publish else ["--no-publish"]))


def source_freshness(cfg: Config):
    return strata_command("source_freshness", cfg, "freshness", "--target", cfg.target)


def publish_data_version(cfg: Config):
    return strata_command("publish_data_version", cfg, "data-version", "publish", "--target", cfg.target)

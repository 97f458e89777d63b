"""``strata launch batch|stream``: check Flex Template parameters locally, then build (or run)
the exact ``gcloud dataflow flex-template run`` command.

The parameters are checked against the template's own ``metadata.json`` (the same file Cloud
Build publishes with the template), so a typo, a missing required parameter or a value the
template's regex refuses is reported here, with the parameter's help text, instead of minutes
later by the Dataflow launcher.
"""

from __future__ import annotations

import datetime as dt
import json
import pathlib
import re

from strata_core import resources

TEMPLATES_DIR = pathlib.Path(__file__).resolve().parent.parent / "templates"
JOBS = {"batch": "ingest_batch", "stream": "ingest_stream"}
JOB_NAME_RE = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
REGION_RE = re.compile(r"^[a-z]+-[a-z]+[0-9]$")
STEP_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_/]*$")


class LaunchError(ValueError):
    """Parameters the template would refuse; the message says which and what is accepted."""


def metadata(job: str) -> dict:
    return json.loads((TEMPLATES_DIR / JOBS[job] / "metadata.json").read_text())


def validate_parameters(meta: dict, params: dict[str, str]) -> None:
    """Raise :class:`LaunchError` listing every problem: unknown names, missing required
    parameters, values that do not match the parameter's regexes."""
    declared = {p["name"]: p for p in meta["parameters"]}
    problems = []
    for name in sorted(set(params) - set(declared)):
        problems.append(f"unknown parameter {name!r}; the template accepts: {', '.join(sorted(declared))}")
    for name, spec in declared.items():
        if name not in params:
            if not spec["isOptional"]:
                problems.append(f"missing required parameter {name!r} ({spec['label']}): {spec['helpText']}")
            continue
        value = params[name]
        bad = [rx for rx in spec.get("regexes", []) if not re.fullmatch(rx, value)]
        if bad:
            problems.append(f"parameter {name}={value!r} does not match {bad[0]} ({spec['label']}: {spec['helpText']})")
    if problems:
        raise LaunchError("; ".join(problems))


def _parameters_flag(params: dict[str, str]) -> str:
    items = [f"{k}={v}" for k, v in sorted(params.items())]
    if any("," in item for item in items):
        # gcloud splits list flags on commas; ^~^ switches the delimiter (gcloud topic escaping).
        return "--parameters=^~^" + "~".join(items)
    return "--parameters=" + ",".join(items)


def build_command(job: str, *, project: str, region: str, params: dict[str, str],
                  job_name: str | None = None, template: str | None = None,
                  temp_location: str | None = None, staging_location: str | None = None,
                  service_account: str | None = None, max_workers: int | None = None,
                  update: bool = False, transform_name_mappings: dict[str, str] | None = None) -> list[str]:
    """The ``gcloud`` argv; raises :class:`LaunchError` on anything the launcher would refuse."""
    if job not in JOBS:
        raise LaunchError(f"unknown job {job!r}; expected one of {', '.join(JOBS)}")
    if not resources.PROJECT_ID_RE.match(project or ""):
        raise LaunchError(f"--project {project!r} must be a GCP project id (6-30 chars: lower-case letters, digits, hyphens)")
    if not REGION_RE.match(region or ""):
        raise LaunchError(f"--region {region!r} must be a Dataflow region such as europe-west1")
    params = dict(params)
    meta = metadata(job)
    names = {p["name"] for p in meta["parameters"]}
    if "bq_project" in names:
        params.setdefault("bq_project", project)
    if job == "stream":
        params.setdefault("subscription", resources.subscription_path(project, "events-ingest"))
    validate_parameters(meta, params)
    job_name = job_name or (f"strata-{job}-{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}"
                            if job == "batch" else "strata-stream")
    if not JOB_NAME_RE.match(job_name):
        raise LaunchError(f"--job-name {job_name!r} must be lower-case letters, digits and hyphens, "
                          "starting with a letter (at most 63 characters)")
    mappings = transform_name_mappings or {}
    if (update or mappings) and job != "stream":
        raise LaunchError("--update and --transform-name-mapping apply to the streaming job only "
                          "(a batch job is relaunched, not updated)")
    if mappings and not update:
        raise LaunchError("--transform-name-mapping needs --update (it renames steps of the running job)")
    for old, new in mappings.items():
        if not (STEP_NAME_RE.match(old) and STEP_NAME_RE.match(new)):
            raise LaunchError(f"--transform-name-mapping {old}={new}: both sides must be step labels "
                              "such as ParseEvents or WriteRaw/WriteEvents")
    temp_location = temp_location or resources.dataflow_temp_location(project)
    for flag, value in (("--temp-location", temp_location), ("--staging-location", staging_location)):
        if value is not None and not value.startswith("gs://"):
            raise LaunchError(f"{flag} {value!r} must be a gs:// path")
    argv = ["gcloud", "dataflow", "flex-template", "run", job_name,
            f"--project={project}", f"--region={region}",
            f"--template-file-gcs-location={template or resources.template_location(project, job)}",
            f"--temp-location={temp_location}", _parameters_flag(params)]
    if staging_location:
        argv.append(f"--staging-location={staging_location}")
    if service_account:
        argv.append(f"--service-account-email={service_account}")
    if max_workers:
        argv.append(f"--max-workers={max_workers}")
    if job == "stream":
        argv.append("--enable-streaming-engine")
    if update:
        argv.append("--update")
    if mappings:
        argv.append("--transform-name-mappings=" + ",".join(f"{o}={n}" for o, n in sorted(mappings.items())))
    return argv

"""``strata launch batch|stream --project P --region R [-p NAME=VALUE ...] [--run]``: validate
the Flex Template parameters locally, print the exact ``gcloud dataflow flex-template run``
command, or run it with ``--run`` (see ``strata.launch``).

It needs only the standard library: ``python3 -m strata.commands.launch stream ...`` runs it on a
bare Python (Cloud Build's SDK image), where the full CLI's other commands could not load.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys


def _pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise ValueError(text)
    return name, value


def register(sub) -> None:
    p = sub.add_parser("launch", help="launch a Dataflow Flex Template (prints the gcloud command; --run runs it)")
    jobs = p.add_subparsers(dest="job", metavar="JOB", required=True)
    for job, what in (("batch", "the batch ingest job (files → raw)"),
                      ("stream", "the streaming ingest job (Pub/Sub → raw)")):
        j = jobs.add_parser(job, help=what, description=f"Check the parameters of {what} against its "
                            "template metadata, then print or run `gcloud dataflow flex-template run`.")
        j.add_argument("--project", required=True, help="GCP project id")
        j.add_argument("--region", required=True, help="Dataflow region, e.g. europe-west1")
        j.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE",
                       help="a template parameter (repeatable), e.g. -p input=gs://bucket/events/*.jsonl; "
                            "bq_project defaults to --project"
                            + ("; subscription to projects/P/subscriptions/events-ingest" if job == "stream" else ""))
        j.add_argument("--job-name", help="Dataflow job name (default: strata-batch-<UTC time> / strata-stream)")
        j.add_argument("--template", help="gs:// path of the template spec (default: the one Cloud Build publishes, "
                                          "gs://P-strata-templates/templates/ingest_<job>.json)")
        j.add_argument("--temp-location", help="gs:// temp location (default gs://P-strata-dataflow/tmp)")
        j.add_argument("--staging-location", help="gs:// staging location")
        j.add_argument("--service-account-email", help="worker service account (docs/production.md, IAM)")
        j.add_argument("--max-workers", type=int, help="autoscaling ceiling")
        if job == "stream":
            j.add_argument("--update", action="store_true",
                           help="replace the running job of the same name in place (no data lost in flight)")
            j.add_argument("--transform-name-mapping", action="append", default=[], metavar="OLD=NEW",
                           help="with --update: a step label that changed (repeatable)")
        j.add_argument("--run", action="store_true", help="run the command instead of printing it")
        j.set_defaults(func=run)


def run(args) -> int:
    from strata import launch

    try:
        params = dict(_pair(p) for p in args.parameter)
        mappings = dict(_pair(m) for m in getattr(args, "transform_name_mapping", []))
    except ValueError as exc:
        print(f"strata launch: {exc.args[0]!r} must be NAME=VALUE", file=sys.stderr)
        return 2
    try:
        argv = launch.build_command(
            args.job, project=args.project, region=args.region, params=params, job_name=args.job_name,
            template=args.template, temp_location=args.temp_location, staging_location=args.staging_location,
            service_account=args.service_account_email, max_workers=args.max_workers,
            update=getattr(args, "update", False), transform_name_mappings=mappings)
    except launch.LaunchError as exc:
        print(f"strata launch {args.job}: {exc}", file=sys.stderr)
        return 2
    if not args.run:
        print(shlex.join(argv))
        return 0
    return subprocess.run(argv).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="strata")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["launch", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

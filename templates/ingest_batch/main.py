"""Flex Template launcher for the batch ingest job: all logic lives in the installed package."""

from beam_pipelines import batch
from beam_pipelines.template import template_argv

if __name__ == "__main__":
    batch.main(template_argv())

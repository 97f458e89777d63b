"""Flex Template launcher for the streaming ingest job: all logic lives in the installed package."""

from beam_pipelines import stream
from beam_pipelines.template import template_argv

if __name__ == "__main__":
    stream.main(template_argv())

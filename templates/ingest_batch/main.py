"""Flex Template launcher for the batch ingest job: all logic lives in the installed package."""

from beam_pipelines import batch

if __name__ == "__main__":
    batch.main()

"""The realistic synthetic event generator behind ``strata generate``.

Produces event files (NDJSON, Avro or Parquet) with realistic behaviour and realistic mess:
mixed timestamp forms, CRLF and blank lines, unknown fields, non-ASCII text, exact duplicates
and bad records of every validate/parse/decode error type, plus an exact ``ground_truth.json``
computed from what was intended. Modules:

* :mod:`~strata.generator.behaviour`   – users, sessions, funnel, refunds (what people do);
* :mod:`~strata.generator.timestamps`  – the timestamp forms producers send;
* :mod:`~strata.generator.bad_records` – one recipe per error type;
* :mod:`~strata.generator.writers`     – NDJSON / Avro / Parquet files;
* :mod:`~strata.generator.truth`       – the ground-truth metrics;
* :mod:`~strata.generator.run`         – the run that ties them together.
"""

from strata.generator.run import FORMATS, GeneratorConfig, existing_outputs, generate

__all__ = ["FORMATS", "GeneratorConfig", "existing_outputs", "generate"]

"""BigQuery glue for the raw layer, one job per module.

* ``tables``  – the raw tables' definitions (from the contract) and their creation;
* ``clients`` – BigQuery clients: production (application default credentials) and loopback
  (a fake or an emulator on 127.0.0.1, for local mode and tests);
* ``rows``    – row codecs: raw rows as insertAll JSON and as load-file JSON, dead letters;
* ``refused`` – the DoFns that turn rows BigQuery refused into dead letters;
* ``merge``   – the idempotent batch write: load files into a staging table, MERGE on row_key.

The composites that use them are in ``beam_pipelines.sinks.bigquery``.
"""

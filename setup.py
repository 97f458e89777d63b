"""Strata: one Beam codebase for streaming and batch event ingestion, dbt layers, a GraphQL API.

One package, one extra per image, so no image carries another's dependencies:

=============  ===================================================  ==========================
extra          what it runs                                          pinned set (each image)
=============  ===================================================  ==========================
``ingest``     the Beam jobs (Flex Templates: launcher + worker)     ``requirements/ingest.txt``
``api``        the GraphQL API (Cloud Run)                           ``requirements/api.txt``
``transform``  dbt on BigQuery (Cloud Run job)                       ``requirements/transform.txt``
``collector``  the event collector (Cloud Run)                       ``requirements/collector.txt``
``local``      the embedded default: DuckDB, dbt-duckdb, emulators   ``requirements.txt`` (all)
=============  ===================================================  ==========================

``strata_core`` (contract, paths, resources, data version) needs only the standard library;
its ``schemas`` and ``lake`` modules need pyarrow, which the ingest and transform sets carry.
``install_requires`` and the extras are loose on purpose (what users resolve against); the
requirement files pin the validated sets, and ``requirements.txt`` is the union used by
``make venv``, CI and the demo.
"""

from setuptools import find_packages, setup

INGEST = ["apache-beam[gcp]>=2.77,<3", "fastavro>=1.9", "pyarrow>=15", "orjson>=3.9", "msgspec>=0.19",
          "numpy>=1.26"]
API = ["django>=5.2", "graphene-django>=3.2", "django-redis>=5", "redis>=5", "sqlalchemy>=2",
       "sqlalchemy-bigquery>=1.11", "dj-database-url>=2", "psycopg[binary]>=3.1", "granian>=2.8",
       "gunicorn>=22", "msgpack>=1.0", "numpy>=1.26", "orjson>=3.9"]
TRANSFORM = ["dbt-core>=1.11,<1.12", "dbt-bigquery>=1.11", "redis>=5", "orjson>=3.9"]
COLLECTOR = ["uvicorn>=0.30", "uvloop>=0.19", "httptools>=0.6", "google-cloud-pubsub>=2.20", "msgspec>=0.19",
             "orjson>=3.9"]
LOCAL = ["tqdm>=4.66", "duckdb>=1.1", "duckdb-engine>=0.13", "dbt-duckdb>=1.11", "gcp-storage-emulator",
         "pytest>=8", "pytest-timeout>=2"]

setup(
    name="strata",
    version="0.1.0",
    description="Event analytics: Beam ingestion, dbt layers and a GraphQL API",
    python_requires=">=3.11",
    packages=find_packages(include=["strata_core", "strata_core.*", "strata_monitor", "strata_monitor.*", "strata", "strata.*", "beam_pipelines",
                                    "beam_pipelines.*", "graphql_site", "graphql_site.*",
                                    "collector", "collector.*"]),
    package_data={"graphql_site": ["schema.graphql", "*/templates/**/*", "*/static/**/*"]},
    install_requires=[],
    extras_require={
        "ingest": INGEST,
        "api": API,
        "transform": TRANSFORM,
        "collector": COLLECTOR,
        "local": sorted(set(INGEST + API + TRANSFORM + COLLECTOR + LOCAL)),
    },
    entry_points={"console_scripts": ["strata=strata.cli:main"]},
)

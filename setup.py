"""Strata: one Beam codebase for streaming and batch event ingestion, dbt layers, a GraphQL API.

``install_requires`` is loose on purpose (this is what the Flex Template image and users
resolve against); ``requirements.txt`` pins the validated set used by CI, the demo and the image.
"""

from setuptools import find_packages, setup

setup(
    name="strata",
    version="0.1.0",
    description="Event analytics: Beam ingestion, dbt layers and a GraphQL API",
    python_requires=">=3.11",
    packages=find_packages(include=["strata_core", "strata_core.*", "strata_monitor", "strata_monitor.*", "strata", "strata.*", "beam_pipelines", "beam_pipelines.*",
                                    "graphql_site", "graphql_site.*"]),
    package_data={"graphql_site": ["schema.graphql"]},
    install_requires=[
        "apache-beam[gcp]>=2.77,<3",
        "fastavro>=1.9",
        "pyarrow>=15",
        "orjson>=3.9",
        "duckdb>=1.1",
    ],
    extras_require={
        "transform": ["dbt-core>=1.11,<1.12", "dbt-duckdb>=1.11", "dbt-bigquery>=1.11"],
        "api": ["django>=5.2", "graphene-django>=3.2", "django-redis>=5", "sqlalchemy>=2",
                "sqlalchemy-bigquery>=1.11", "duckdb-engine>=0.13", "dj-database-url>=2",
                "psycopg[binary]>=3.1", "gunicorn>=22"],
    },
    entry_points={"console_scripts": ["strata=strata.cli:main"]},
)

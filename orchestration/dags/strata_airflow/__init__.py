"""Helpers of the Strata DAGs (config, steps, alerts). Lives in the DAG folder so that Cloud
Composer, which puts that folder on ``sys.path``, imports it with the DAGs."""

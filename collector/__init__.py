"""The Strata collector: the HTTP entry point of the streaming path (Cloud Run in production).

A small ASGI service of its own (``collector.app``), served by uvicorn (``collector.server``):
no Django, no Beam, so it stays fast and up when the API or the warehouse is busy. It imports
only ``strata_core`` (write keys, Pub/Sub clients). ``python -m collector --topic ...`` runs it.
"""

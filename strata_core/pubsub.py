"""Pub/Sub clients for the collector, the local streaming runner and the CLI.

With ``PUBSUB_EMULATOR_HOST`` set (local mode, tests) every client talks plain gRPC to the
emulator on loopback with anonymous credentials, so no credential lookup and no Google host is
ever contacted. Without it they are the ordinary clients (application default credentials).
Google's libraries are imported lazily: importing this module costs nothing.
"""

from __future__ import annotations

import os
import re

from strata_core.resources import PROJECT_ID_RE

_PROJECT = PROJECT_ID_RE.pattern.strip("^$")
_NAME = r"[A-Za-z][-A-Za-z0-9._~%+]{2,254}"
#: ``projects/P/topics/T`` and ``projects/P/subscriptions/S``, P being a GCP project id.
TOPIC_RE = re.compile(rf"^projects/{_PROJECT}/topics/{_NAME}$")
SUBSCRIPTION_RE = re.compile(rf"^projects/{_PROJECT}/subscriptions/{_NAME}$")


def check_topic(topic: str, flag: str = "--topic") -> str:
    if not topic or not TOPIC_RE.match(topic):
        raise ValueError(f"{flag} {topic!r} must be a Pub/Sub topic name projects/PROJECT/topics/NAME "
                         "(PROJECT: 6-30 lower-case letters, digits, hyphens; NAME: 3-255 characters "
                         "starting with a letter)")
    return topic


def emulator_host() -> str | None:
    return os.environ.get("PUBSUB_EMULATOR_HOST") or None


def publisher_client(**kwargs):
    """The batching ``PublisherClient`` (emulator-aware by itself through the environment)."""
    from google.cloud import pubsub_v1

    return pubsub_v1.PublisherClient(**kwargs)


def subscriber_client():
    from google.cloud import pubsub_v1

    return pubsub_v1.SubscriberClient()


def async_publisher():
    """The asyncio GAPIC publisher: one ``Publish`` RPC per call, awaited on the event loop.

    The collector uses it rather than the batching ``PublisherClient``: a request's events go
    out in one RPC whose acknowledgement (the message ids) is what the 202 waits for, with the
    caller's own timeout, and no background thread sits between the HTTP request and Pub/Sub.
    """
    from google.pubsub_v1.services.publisher import PublisherAsyncClient
    from google.pubsub_v1.services.publisher.transports import PublisherGrpcAsyncIOTransport

    host = emulator_host()
    if host:
        import grpc
        from google.auth.credentials import AnonymousCredentials

        channel = grpc.aio.insecure_channel(host)
        return PublisherAsyncClient(transport=PublisherGrpcAsyncIOTransport(
            channel=channel, credentials=AnonymousCredentials()))
    return PublisherAsyncClient()

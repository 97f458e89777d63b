"""Google's real Pub/Sub emulator as a pytest fixture (not a fake: the emulator itself).

    from tests.fakes.pubsub import pubsub_emulator  # noqa: F401  (pytest fixture)

    def test_stream(pubsub_emulator):
        topology = pubsub_emulator.topology(ack_deadline_s=10)  # fresh topics + subscriptions
        ...

One emulator per test module (it starts in a few seconds), on a free 127.0.0.1 port, with
``PUBSUB_EMULATOR_HOST`` pointing at it while the module runs. Each ``topology()`` call gets
topics and subscriptions of its own, so tests in a module never see each other's messages.
Without the emulator the test skips with the reason, and fails in CI (``need_service``).
"""

from __future__ import annotations

import dataclasses
import itertools
import os

import pytest

from strata import pubsub_local

_names = itertools.count(1)


@dataclasses.dataclass
class PubSubEmulator:
    emulator: pubsub_local.Emulator
    data_dir: object

    @property
    def host(self) -> str:
        return self.emulator.host

    def topology(self, ack_deadline_s: int = pubsub_local.ACK_DEADLINE_S) -> pubsub_local.Topology:
        n = next(_names)
        topology = pubsub_local.Topology(events_topic_id=f"events-{os.getpid()}-{n}",
                                         dead_letter_topic_id=f"dead-letters-{os.getpid()}-{n}")
        return pubsub_local.ensure_topology(topology, ack_deadline_s=ack_deadline_s)

    def restart(self) -> None:
        """Stop the emulator and start it again on the same port (its state is lost: in memory)."""
        self.emulator.stop()
        self.emulator = pubsub_local.start_emulator(self.data_dir, self.emulator.port)


@pytest.fixture(scope="module")
def pubsub_emulator(tmp_path_factory):
    from conftest import need_service

    data_dir = tmp_path_factory.mktemp("pubsub")
    try:
        emulator = pubsub_local.start_emulator(data_dir)
    except pubsub_local.EmulatorMissing as exc:
        need_service(False, str(exc))
    saved = os.environ.get("PUBSUB_EMULATOR_HOST")
    os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
    fixture = PubSubEmulator(emulator, data_dir)
    try:
        yield fixture
    finally:
        fixture.emulator.stop()
        if saved is None:
            os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        else:
            os.environ["PUBSUB_EMULATOR_HOST"] = saved

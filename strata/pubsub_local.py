"""Google's Pub/Sub emulator, started and stopped by Strata itself, and the streaming topology.

``start_emulator()`` runs the emulator that ships with the Google Cloud SDK (its jar directly,
so there is one process to stop, else ``gcloud beta emulators pubsub start``) on a free
127.0.0.1 port and waits until it answers. ``ensure_topology()`` creates what the streaming
path needs, idempotently:

* the events topic (the collector publishes there) and the pipeline's subscription on it, with
  a dead-letter policy: after ``MAX_DELIVERY_ATTEMPTS`` failed deliveries Pub/Sub itself moves a
  message to the dead-letter topic (a backstop: the pipeline dead-letters bad records itself);
* the dead-letter topic (the pipeline publishes every dead letter there, with its original bytes
  and attributes) and a subscription on it, so dead letters are kept: Pub/Sub drops messages
  published to a topic without subscriptions.

Nothing here is used in production: there the topics and subscriptions are infrastructure.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time
from typing import Iterator

#: The project id used locally (Beam rejects project ids under 6 characters).
PROJECT = "strata-local"
MAX_DELIVERY_ATTEMPTS = 10
ACK_DEADLINE_S = 60
_JAR_DIRS = ("/usr/lib/google-cloud-sdk/platform/pubsub-emulator/lib",
             "/usr/share/google-cloud-sdk/platform/pubsub-emulator/lib",
             "/google-cloud-sdk/platform/pubsub-emulator/lib")


class EmulatorMissing(RuntimeError):
    """The Pub/Sub emulator (or Java to run it) is not installed on this machine."""


@dataclasses.dataclass(frozen=True)
class Topology:
    """Resource names of the streaming path, all in one project."""

    project: str = PROJECT
    events_topic_id: str = "strata-events"
    dead_letter_topic_id: str = "strata-dead-letters"

    @property
    def events_topic(self) -> str:
        return f"projects/{self.project}/topics/{self.events_topic_id}"

    @property
    def subscription(self) -> str:
        return f"projects/{self.project}/subscriptions/{self.events_topic_id}-pipeline"

    @property
    def dead_letter_topic(self) -> str:
        return f"projects/{self.project}/topics/{self.dead_letter_topic_id}"

    @property
    def dead_letter_subscription(self) -> str:
        return f"projects/{self.project}/subscriptions/{self.dead_letter_topic_id}-kept"


def _find_jar() -> pathlib.Path | None:
    dirs = list(_JAR_DIRS)
    gcloud = shutil.which("gcloud")
    if gcloud:
        dirs.insert(0, str(pathlib.Path(gcloud).resolve().parent.parent / "platform/pubsub-emulator/lib"))
    for directory in dirs:
        jars = sorted(pathlib.Path(directory).glob("cloud-pubsub-emulator-*.jar"))
        if jars:
            return jars[-1]
    return None


def emulator_command(port: int, data_dir: pathlib.Path) -> list[str]:
    """The command line that runs the emulator on 127.0.0.1:``port``; raises :class:`EmulatorMissing`."""
    jar = _find_jar()
    if jar is not None and shutil.which("java"):
        return [shutil.which("java"), "-jar", str(jar), "--host=127.0.0.1", f"--port={port}"]
    if shutil.which("gcloud") and jar is not None:
        return ["gcloud", "beta", "emulators", "pubsub", "start", f"--host-port=127.0.0.1:{port}",
                f"--data-dir={data_dir}"]
    raise EmulatorMissing(
        "Google's Pub/Sub emulator is not installed: no cloud-pubsub-emulator jar under "
        f"{', '.join(_JAR_DIRS)} (or next to gcloud), or no `java` on PATH. Install it with "
        "`gcloud components install pubsub-emulator` (or the google-cloud-cli-pubsub-emulator apt "
        "package) and a Java 11+ runtime.")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclasses.dataclass
class Emulator:
    """A running emulator. ``host`` is what ``PUBSUB_EMULATOR_HOST`` must be set to."""

    port: int
    process: subprocess.Popen
    log_path: pathlib.Path

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {"PUBSUB_EMULATOR_HOST": self.host}

    def stop(self, timeout_s: float = 10) -> None:
        """Stop the emulator (its whole process group: gcloud starts Java as a child)."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)


def start_emulator(data_dir: pathlib.Path, port: int | None = None, timeout_s: float = 60) -> Emulator:
    """Start the emulator on ``port`` (a free one by default) and wait until it serves gRPC.

    Raises :class:`EmulatorMissing` when it is not installed, ``RuntimeError`` (with the end of
    its log) when it exits or does not answer within ``timeout_s``.
    """
    data_dir = pathlib.Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    command = emulator_command(port, data_dir)
    log_path = data_dir / "emulator.log"
    log = open(log_path, "ab")
    # Its own session: Ctrl-C in a terminal reaches us, and we stop it in order (demo, tests).
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    log.close()
    emulator = Emulator(port, process, log_path)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the Pub/Sub emulator exited with status {process.returncode}; its log "
                                   f"({log_path}) ends with:\n{_tail(log_path)}")
            if _answers(port):
                return emulator
            time.sleep(0.1)
    except BaseException:  # Ctrl-C while waiting: never leave it running
        emulator.stop()
        raise
    emulator.stop()
    raise RuntimeError(f"the Pub/Sub emulator did not answer on 127.0.0.1:{port} within {timeout_s:.0f} s; "
                       f"log {log_path}:\n{_tail(log_path)}")


def _tail(path: pathlib.Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _answers(port: int) -> bool:
    """True once the emulator's HTTP/gRPC port accepts connections and serves a request."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/projects/{PROJECT}/topics", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def running_emulator(data_dir: pathlib.Path, port: int | None = None) -> Iterator[Emulator]:
    """``start_emulator`` as a context manager that also sets ``PUBSUB_EMULATOR_HOST``."""
    emulator = start_emulator(data_dir, port)
    saved = os.environ.get("PUBSUB_EMULATOR_HOST")
    os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
    try:
        yield emulator
    finally:
        emulator.stop()
        if saved is None:
            os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        else:
            os.environ["PUBSUB_EMULATOR_HOST"] = saved


def ensure_topology(topology: Topology = Topology(), *, ack_deadline_s: int = ACK_DEADLINE_S) -> Topology:
    """Create the topics and subscriptions of ``topology`` unless they exist (see module doc)."""
    from google.api_core import exceptions
    from google.cloud import pubsub_v1

    from strata_core.pubsub import publisher_client, subscriber_client

    publisher = publisher_client()
    subscriber = subscriber_client()
    for topic in (topology.events_topic, topology.dead_letter_topic):
        with contextlib.suppress(exceptions.AlreadyExists):
            publisher.create_topic(request={"name": topic})
    subscriptions = (
        (topology.subscription, topology.events_topic,
         pubsub_v1.types.DeadLetterPolicy(dead_letter_topic=topology.dead_letter_topic,
                                          max_delivery_attempts=MAX_DELIVERY_ATTEMPTS)),
        (topology.dead_letter_subscription, topology.dead_letter_topic, None),
    )
    for name, topic, policy in subscriptions:
        request = {"name": name, "topic": topic, "ack_deadline_seconds": ack_deadline_s}
        if policy is not None:
            request["dead_letter_policy"] = policy
        with contextlib.suppress(exceptions.AlreadyExists):
            subscriber.create_subscription(request=request)
    return topology

"""What both Flex Template entry points (``templates/*/main.py``) do before handing over.

The image is both the template launcher and the SDK worker: its build bakes its own URI into
``STRATA_SDK_CONTAINER_IMAGE`` (``--build-arg IMAGE=...``), and the launcher passes it on as
``--sdk_container_image``, so Dataflow starts the workers from the same image, with every
dependency already installed (nothing is pip-installed when a worker starts).
"""

from __future__ import annotations

import os
import sys

IMAGE_ENV = "STRATA_SDK_CONTAINER_IMAGE"


def template_argv(argv: list[str] | None = None) -> list[str]:
    """The launcher's arguments plus ``--sdk_container_image`` (unless already given)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    image = os.environ.get(IMAGE_ENV)
    if image and not any(a.startswith("--sdk_container_image") for a in argv):
        argv.append(f"--sdk_container_image={image}")
    return argv

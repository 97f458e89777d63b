import os
import sys

if os.environ.get("PUBSUB_EMULATOR_HOST"):  # local mode: keep google-auth off the metadata server
    from strata_core import paths

    paths.use_offline_env()

from collector.server import main  # noqa: E402

sys.exit(main())

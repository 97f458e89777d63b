"""Vendor Apache ECharts into the dashboards' static files, pinned and checksummed.

    python graphql_site/dashboards/vendor_echarts.py [--version 6.1.0]

Runs ``npm pack echarts@VERSION`` (the registry's own tarball), checks the tarball against the
registry's published integrity (sha512), extracts ``dist/echarts.min.js`` with its LICENSE and
NOTICE, and records the version and checksums in ``VENDORED.json``. The dashboards never load
anything from a CDN; ``tests/test_dashboards.py`` checks the vendored file against that record.

Vendored (committed) rather than installed at ``make venv`` time: the file is one 1 MB asset
that changes only when someone upgrades it on purpose, and ``make demo`` / the Cloud Run image
then need neither node nor the npm registry.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import pathlib
import subprocess
import sys
import tarfile
import tempfile

VENDOR = pathlib.Path(__file__).resolve().parent / "static" / "dashboards" / "vendor"
RECORD = VENDOR / "VENDORED.json"
DEFAULT_VERSION = "6.1.0"


def sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def vendor(version: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        packed = json.loads(subprocess.run(["npm", "pack", f"echarts@{version}", "--json", "--silent"], cwd=tmp,
                                           check=True, capture_output=True, text=True).stdout)[0]
        tarball = pathlib.Path(tmp) / packed["filename"]
        published = subprocess.run(["npm", "view", f"echarts@{version}", "dist.integrity"], check=True,
                                   capture_output=True, text=True).stdout.strip()
        actual = "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
        if actual != published:
            raise SystemExit(f"echarts@{version}: tarball integrity {actual} != the registry's {published}")
        VENDOR.mkdir(parents=True, exist_ok=True)
        for old in VENDOR.glob("echarts-*.min.js"):
            old.unlink()
        target = VENDOR / f"echarts-{version}.min.js"
        with tarfile.open(tarball) as archive:
            for member, out in (("package/dist/echarts.min.js", target),
                                ("package/LICENSE", VENDOR / "ECHARTS_LICENSE"),
                                ("package/NOTICE", VENDOR / "ECHARTS_NOTICE")):
                out.write_bytes(archive.extractfile(member).read())
    record = {"package": "echarts", "version": version, "license": "Apache-2.0", "tarball_integrity": published,
              "file": target.name, "sha256": sha256(target)}
    RECORD.write_text(json.dumps(record, indent=2) + "\n")
    return record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default=DEFAULT_VERSION)
    print(json.dumps(vendor(parser.parse_args(argv).version), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Browser assets the pages serve from this server, never from a CDN: pinned npm packages,
unpacked into ``static/gateway/vendor/`` and committed, with their checksums in ``VENDOR.json``.

Why committed rather than installed by ``make``: the pages must work on a machine with no
internet and no node, and a reviewer can see exactly which bytes are served.

    python -m graphql_site.gateway.vendor_assets update   # npm pack the pins below, unpack, record
    python -m graphql_site.gateway.vendor_assets check    # the files match VENDOR.json (offline)

``update`` is the only step that needs the npm registry; change a version here, run it, commit.
"""

from __future__ import annotations

import base64
import hashlib
import json
import pathlib
import subprocess
import sys
import tarfile
import tempfile

VENDOR_DIR = pathlib.Path(__file__).resolve().parent / "static" / "gateway" / "vendor"
MANIFEST = VENDOR_DIR / "VENDOR.json"

#: package -> (version, {path in the package tarball: file name served})
PACKAGES = {
    # GraphiQL 3 is the last major version with a UMD build (4 and later are ES modules only).
    "graphiql": ("3.8.3", {"package/graphiql.min.js": "graphiql.min.js",
                           "package/graphiql.min.css": "graphiql.min.css",
                           "package/LICENSE": "LICENSE.graphiql.txt"}),
    # React 18 is the last major version with UMD builds; GraphiQL 3 supports 16 to 18.
    "react": ("18.3.1", {"package/umd/react.production.min.js": "react.production.min.js",
                         "package/LICENSE": "LICENSE.react.txt"}),
    "react-dom": ("18.3.1", {"package/umd/react-dom.production.min.js": "react-dom.production.min.js",
                             "package/LICENSE": "LICENSE.react-dom.txt"}),
}


def _sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def update() -> dict:
    VENDOR_DIR.mkdir(parents=True, exist_ok=True)
    manifest = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (version, files) in PACKAGES.items():
            out = subprocess.run(["npm", "pack", f"{name}@{version}", "--json", "--pack-destination", tmp],
                                 check=True, capture_output=True, text=True)
            packed = json.loads(out.stdout)[0]
            tarball = pathlib.Path(tmp) / packed["filename"]
            digest = "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
            if digest != packed["integrity"]:
                raise SystemExit(f"{name}@{version}: tarball does not match the registry's integrity")
            with tarfile.open(tarball) as tar:
                for member, target in files.items():
                    (VENDOR_DIR / target).write_bytes(tar.extractfile(member).read())
            manifest[name] = {"version": version, "integrity": packed["integrity"],
                              "files": {target: _sha256(VENDOR_DIR / target) for target in files.values()}}
    MANIFEST.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def check() -> list[str]:
    """Problems with the vendored files (empty when they are exactly what VENDOR.json records)."""
    if not MANIFEST.exists():
        return [f"{MANIFEST} is missing: run `python -m graphql_site.gateway.vendor_assets update`"]
    manifest = json.loads(MANIFEST.read_text())
    problems = []
    for name, (version, files) in PACKAGES.items():
        entry = manifest.get(name)
        if entry is None or entry["version"] != version:
            problems.append(f"{name}: pinned {version}, vendored {entry and entry['version']}: run update")
            continue
        for target in files.values():
            path = VENDOR_DIR / target
            if not path.exists():
                problems.append(f"{target} is missing")
            elif _sha256(path) != entry["files"].get(target):
                problems.append(f"{target} does not match its checksum in VENDOR.json")
    return problems


def main(argv: list[str]) -> int:
    if argv[:1] == ["update"]:
        for name, entry in update().items():
            print(f"{name}@{entry['version']} {entry['integrity']}")
        return 0
    if argv[:1] == ["check"]:
        problems = check()
        print("\n".join(problems) or "vendored assets match VENDOR.json")
        return 1 if problems else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

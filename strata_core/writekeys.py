"""Write keys: what sources send to the collector. Only their SHA-256 hashes are ever stored.

A key is ``swk_`` + 32 random bytes (URL-safe base64), shown once when created. The key file
is JSON, ``{"keys": [{"name", "sha256", "created_at"}]}``, private to its owner (0600):
``$STRATA_HOME/write_keys.json`` locally; in production a Secret Manager secret mounted as a
file into the collector's Cloud Run service (see README, "The collector").

A plain SHA-256 (no salt, no slow KDF) is the right hash here: keys are 256-bit random
tokens, not passwords, so they cannot be guessed from their hash, and the collector checks one
on every request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import pathlib
import re
import secrets

PREFIX = "swk_"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def default_path() -> pathlib.Path:
    from strata_core import paths

    return paths.home() / "write_keys.json"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def load(path: pathlib.Path) -> dict[str, str]:
    """``{sha256: name}`` from a key file; an absent file means no keys (every request is 401)."""
    try:
        data = json.loads(pathlib.Path(path).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ValueError(f"write-key file {path} is unreadable or not JSON: {exc}") from None
    try:
        return {entry["sha256"]: entry["name"] for entry in data["keys"]}
    except (KeyError, TypeError):
        raise ValueError(f"write-key file {path} must hold {{\"keys\": [{{\"name\", \"sha256\"}}, ...]}}") from None


def create(name: str, path: pathlib.Path | None = None) -> str:
    """Create a key named ``name``, store its hash in ``path`` (0600), and return the key."""
    if not NAME_RE.match(name or ""):
        raise ValueError(f"write-key name {name!r} must be 1-64 letters, digits, '_', '.' or '-', "
                         "starting with a letter or digit")
    path = pathlib.Path(path or default_path())
    try:
        entries = json.loads(path.read_text())["keys"]
    except FileNotFoundError:
        entries = []
    if any(entry["name"] == name for entry in entries):
        raise ValueError(f"a write key named {name!r} already exists in {path}; choose another name")
    key = PREFIX + secrets.token_urlsafe(32)
    entries.append({"name": name, "sha256": digest(key),
                    "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written to a private temporary file and renamed: never world-readable, never half-written.
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"keys": entries}, f, indent=2)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return key

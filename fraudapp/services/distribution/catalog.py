"""The catalog of published versions: which versions exist and where nodes download them.

The trainer publishes versions into its own registry and lists them in `model_versions` with the
URL of their artifact (`GET /artifacts/<version>` on the trainer).
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy import select

from ...extensions import db
from ...i18n import Message
from ...ml.metrics import finite
from ...ml.registry import RegistryError
from ...models import ModelVersion
from ..serving import registry


class ReleaseError(Exception):
    """A version that cannot be released or installed."""


def register(version: str) -> ModelVersion:
    """List a version of this process's registry in the catalog (idempotent; in the caller's
    transaction)."""
    row = db.session.get(ModelVersion, version)
    if row is not None:
        return row
    meta = registry().meta(version)
    row = ModelVersion(
        version=version,
        sha256=meta["sha256"],
        artifact_url=artifact_url(version),
        summary=_summary(meta),
    )
    db.session.add(row)
    db.session.flush()
    return row


def _summary(meta: dict) -> dict:
    return {
        "created_at": meta.get("created_at"),
        "threshold": meta.get("threshold"),
        "windows": meta.get("windows") or {},
        "metrics": finite(meta.get("metrics")) or {},
    }


def advertise() -> int:
    """On the trainer: list every version of its registry in the catalog at this trainer's
    current ARTIFACT_BASE_URL (it may have moved since a version was published); how many rows
    changed. Commits."""
    changed = 0
    for version in registry().versions():
        row = db.session.get(ModelVersion, version)
        if row is None:
            register(version)
            changed += 1
        elif row.artifact_url != artifact_url(version):
            row.artifact_url = artifact_url(version)
            changed += 1
    db.session.commit()
    return changed


def artifact_url(version: str) -> str:
    """Where nodes download a version of this trainer's registry."""
    return f"{current_app.config['ARTIFACT_BASE_URL'].rstrip('/')}/artifacts/{version}"


def artifact(version: str) -> dict:
    """A version of this registry as the artifact endpoint serves it: metadata and model text."""
    reg = registry()
    reg.load(version)  # refuse to hand out a version that does not verify here
    model_text = (reg.path(version) / "model.txt").read_text()
    return {"version": version, "meta": reg.meta(version), "model": model_text}


def versions() -> list[dict]:
    """Every known version, newest first: the catalog's and this registry's."""
    rows = {
        row.version: {"version": row.version, **row.summary}
        for row in db.session.scalars(select(ModelVersion))
    }
    reg = registry()
    for version in reg.versions():
        if version not in rows:
            try:
                meta = reg.meta(version)
            except RegistryError:
                meta = {}
            rows[version] = {"version": version, **_summary(meta)}
    return sorted(rows.values(), key=lambda row: int(row["version"][1:]), reverse=True)


def register_if_local(version: str) -> ModelVersion:
    """The catalog row of a version, registering it first when this registry holds it."""
    row = db.session.get(ModelVersion, version)
    if row is None:
        if version not in registry().versions():
            raise ReleaseError(Message("there is no such version"))
        row = register(version)
    return row

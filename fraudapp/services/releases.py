"""Model distribution: the database records which version serves; every process converges on it.

The trainer publishes versions into its own registry and lists them in `model_versions` with the
URL of their artifact. Promotions and rollbacks append to `model_releases`: the latest row is the
version every prediction node must serve. A node lacking that version downloads the artifact from
the trainer (a signed request), checks it (sha256, feature list, a model that loads) before writing
anything, installs it in its own registry and moves its CURRENT pointer; its workers follow the
pointer. Nodes learn of a release by a signed webhook and, should one be missed, by comparing
with the database when they start and every NODE_SYNC_SECONDS.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import random
import re
import secrets
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from ..extensions import db
from ..ml.metrics import finite
from ..ml.registry import VERSION_RE, Registry, RegistryError, previous_of, verified_booster
from ..models import ModelRelease, ModelVersion, NodeStatus, utcnow
from ..signing import HEADER, sign
from . import audit, training, webhooks
from .aggregates import dialect_insert

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
ACTIONS = {"promote": "model.promoted", "rollback": "model.rolled_back"}


class ReleaseError(Exception):
    """A version that cannot be released or installed."""


class ArtifactError(ReleaseError):
    """A downloaded artifact that fails verification: nothing was installed."""


class FetchError(ReleaseError):
    """The artifact could not be downloaded (the trainer is down or refused us): retry later."""


# -- the catalog of published versions ---------------------------------------------------------


def register(version: str) -> ModelVersion:
    """List a version of this process's registry in the catalog (idempotent; in the caller's
    transaction)."""
    row = db.session.get(ModelVersion, version)
    if row is not None:
        return row
    meta = training.registry().meta(version)
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
    for version in training.registry().versions():
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
    reg = training.registry()
    reg.load(version)  # refuse to hand out a version that does not verify here
    model_text = (reg.path(version) / "model.txt").read_text()
    return {"version": version, "meta": reg.meta(version), "model": model_text}


def versions() -> list[dict]:
    """Every known version, newest first: the catalog's and this registry's."""
    rows = {
        row.version: {"version": row.version, **row.summary}
        for row in db.session.scalars(select(ModelVersion))
    }
    reg = training.registry()
    for version in reg.versions():
        if version not in rows:
            try:
                meta = reg.meta(version)
            except RegistryError:
                meta = {}
            rows[version] = {"version": version, **_summary(meta)}
    return sorted(rows.values(), key=lambda row: int(row["version"][1:]), reverse=True)


# -- which version serves ----------------------------------------------------------------------


def released() -> str | None:
    """The version of the latest release recorded in the database (None before the first)."""
    return db.session.scalar(select(ModelRelease.version).order_by(ModelRelease.id.desc()))


def current() -> str | None:
    """The version every node must serve: the latest release, else this registry's pointer."""
    return released() or training.registry().current()


def previous() -> str | None:
    """The version a rollback returns to."""
    changes = [
        (row.version, row.action)
        for row in db.session.scalars(select(ModelRelease).order_by(ModelRelease.id))
    ]
    return previous_of(changes) if changes else training.registry().previous()


def release(version: str, action: str, actor: str, details: dict | None = None) -> None:
    """Make a version the one every node serves: install and verify it here, record the release
    (audited), commit, move this registry's pointer, and tell the nodes by webhook — at once on the
    trainer; a release made on a prediction node is announced by the trainer's next round."""
    if action not in ACTIONS:
        raise ValueError(f"unknown release action {action!r}")
    reg = training.registry()
    ensure_installed(version)
    try:
        reg.load(version)  # verified here before any node is told
    except RegistryError as exc:
        raise ReleaseError(str(exc)) from exc
    if released() is None:  # the first release: the registry's own history comes first
        for old_version, old_action in reg.changes():
            db.session.add(
                ModelRelease(
                    version=old_version, action=old_action, actor="registry", announced=True
                )
            )
    announcer = current_app.config["ROLE"] != "web"
    db.session.add(ModelRelease(version=version, action=action, actor=actor, announced=announcer))
    audit.record(ACTIONS[action], target=version, actor=actor, details=details)
    deliveries = webhooks.announce(register_if_local(version)) if announcer else []
    db.session.commit()
    sync(action)
    webhooks.deliver([delivery.id for delivery in deliveries])


def announce_pending() -> int:
    """On the trainer: queue model.published for the latest release if a prediction node made it
    (older unannounced ones are superseded); how many deliveries were queued. Commits."""
    pending = db.session.scalars(
        select(ModelRelease).where(~ModelRelease.announced).order_by(ModelRelease.id)
    ).all()
    if not pending:
        return 0
    claimed = db.session.execute(
        update(ModelRelease)
        .where(ModelRelease.id.in_([row.id for row in pending]), ~ModelRelease.announced)
        .values(announced=True)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != len(pending):  # another trainer is announcing them
        db.session.rollback()
        return 0
    deliveries = []
    if pending[-1].version == released():
        deliveries = webhooks.announce(register_if_local(pending[-1].version))
    db.session.commit()
    return len(deliveries)


def register_if_local(version: str) -> ModelVersion:
    """The catalog row of a version, registering it first when this registry holds it."""
    row = db.session.get(ModelVersion, version)
    if row is None:
        if version not in training.registry().versions():
            raise ReleaseError("there is no such version")
        row = register(version)
    return row


# -- installing on a node ----------------------------------------------------------------------


def ensure_installed(version: str) -> None:
    """Install a version from the trainer unless this registry holds it already."""
    if version in training.registry().versions():
        return
    row = db.session.get(ModelVersion, version)
    if row is None:
        raise ReleaseError("there is no such version")
    install(version, row.artifact_url, row.sha256)


def install(version: str, url: str, sha256: str) -> bool:
    """Download, verify and install a version; False when it was installed already.

    Refuses (ArtifactError, nothing written) an artifact whose model text does not hash to
    `sha256`, whose metadata disagrees, whose feature list is not this code's or whose model does
    not load; an installed version with another checksum is refused too.
    """
    reg = training.registry()
    with _lock(reg, "install"):
        if version in reg.versions():
            if reg.meta(version).get("sha256") != sha256:
                raise ArtifactError(f"version {version} is installed with another checksum")
            return False
        data = fetch(url)
        meta = data.get("meta") if isinstance(data, dict) else None
        model_text = data.get("model") if isinstance(data, dict) else None
        if not isinstance(meta, dict) or not isinstance(model_text, str):
            raise ArtifactError(f"{url}: not a model artifact")
        if data.get("version") != version or meta.get("sha256") != sha256:
            raise ArtifactError(f"{url}: artifact is not version {version} with sha256 {sha256}")
        try:
            verified_booster(model_text, meta, version)
            reg.install(model_text, meta, version=version)
        except RegistryError as exc:
            raise ArtifactError(str(exc)) from exc
        current_app.logger.info("installed model %s from %s", version, url)
        return True


def fetch(url: str) -> dict:
    """GET an artifact, signed with this node's webhook secret over its path and a fresh nonce
    (the trainer accepts each signed request once); its JSON."""
    secret = current_app.config["WEBHOOK_SECRET"]
    if not secret:
        raise FetchError("FRAUDAPP_WEBHOOK_SECRET is not set: cannot authenticate to the trainer")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise FetchError(f"{url}: only http(s) artifact URLs are allowed")
    nonce = secrets.token_urlsafe(16)
    signed_url = urllib.parse.urlunsplit(parts._replace(query=f"nonce={nonce}", fragment=""))
    header = sign(secret, webhooks.artifact_message(parts.path, nonce))
    request = urllib.request.Request(signed_url, headers={HEADER: header})  # noqa: S310
    try:
        with urllib.request.urlopen(  # noqa: S310 (scheme checked above)
            request, timeout=current_app.config["ARTIFACT_TIMEOUT_SECONDS"]
        ) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise FetchError(f"{url}: the trainer answered {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise FetchError(f"{url}: {exc}") from exc
    except ValueError as exc:
        raise ArtifactError(f"{url}: not JSON ({exc})") from exc


@contextlib.contextmanager
def _lock(reg: Registry, name: str):
    """An exclusive lock per model directory shared by the processes of a node: "install" (one
    download at a time) or "pointer" (one reader-then-writer of CURRENT at a time)."""
    reg.root.mkdir(parents=True, exist_ok=True)
    with open(reg.root / f".{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def serve(announced: str) -> str:
    """After a model.published delivery: serve the database's current version — the announced
    one, unless a later release superseded it — or, with no release recorded, the announced one."""
    if released() is None:
        reg = training.registry()
        with _lock(reg, "pointer"):
            if reg.current() != announced:
                reg.set_current(announced, action="sync")
        return announced
    sync()
    return training.registry().current()


def sync(action: str = "sync") -> str | None:
    """Point this registry at the database's current version, installing it first if needed;
    the version switched to (None: nothing to do).

    The database is read again under the node's pointer lock, so when releases and syncs race,
    the last writer writes the latest release: no process puts back a version it read earlier.
    """
    reg = training.registry()
    while True:
        target = released()
        if target is None:
            return None
        ensure_installed(target)
        with _lock(reg, "pointer"):
            db.session.rollback()  # end any transaction: read what is committed now
            if released() != target:
                continue  # superseded while installing: install the newer one first
            if reg.current() == target:
                return None
            reg.set_current(target, action=action)
        current_app.logger.info("now serving model %s (the database's current version)", target)
        return target


# -- node status -------------------------------------------------------------------------------


def node_name() -> str:
    """This process's name on the nodes page."""
    config = current_app.config
    return config["NODE_NAME"] or config["NODE_URL"] or socket.gethostname()


def heartbeat(error: str | None = None) -> None:
    """Report the version this node's registry serves; commits."""
    config = current_app.config
    values = {
        "name": node_name(),
        "role": config["ROLE"],
        "url": config["NODE_URL"],
        "version": training.registry().current(),
        "error": (error or None) and error[:500],
        "heartbeat_at": utcnow(),
    }
    statement = dialect_insert(NodeStatus.__table__).values(values)
    db.session.execute(
        statement.on_conflict_do_update(
            index_elements=["name"],
            set_={key: value for key, value in values.items() if key != "name"},
        )
    )
    db.session.commit()


def nodes() -> list[dict]:
    """Every process that reported, with whether it is behind the current version or silent."""
    target = current()
    silent_after = dt.timedelta(seconds=3 * current_app.config["NODE_SYNC_SECONDS"] + 30)
    now = utcnow()
    rows = []
    for row in db.session.scalars(select(NodeStatus).order_by(NodeStatus.name)):
        seen = row.heartbeat_at
        seen = seen if seen.tzinfo else seen.replace(tzinfo=dt.UTC)  # SQLite: naive UTC
        rows.append(
            {
                "name": row.name,
                "role": row.role,
                "url": row.url,
                "version": row.version,
                "heartbeat_at": seen,
                "error": row.error,
                "behind": row.version != target,
                "silent": now - seen > silent_after,
            }
        )
    return rows


# -- the agent in each web worker --------------------------------------------------------------


def start_agent(app) -> threading.Thread | None:
    """Start this worker's sync-and-heartbeat thread (a node converges on start, then every
    NODE_SYNC_SECONDS); None when switched off (NODE_SYNC_SECONDS = 0)."""
    interval = float(app.config["NODE_SYNC_SECONDS"])
    if interval <= 0:
        return None
    thread = threading.Thread(
        target=_agent, args=(app, interval), daemon=True, name="fraudapp-node-agent"
    )
    thread.start()
    return thread


def _agent(app, interval: float) -> None:
    while True:
        with app.app_context():
            tick()
        threading.Event().wait(interval * random.uniform(0.8, 1.2))  # noqa: S311 (jitter)


def tick() -> None:
    """One round of the agent: converge on the current version, then report."""
    error = None
    try:
        sync()
    except (ReleaseError, RegistryError) as exc:
        error = str(exc)
        current_app.logger.error("could not switch to the current model version: %s", exc)
    except SQLAlchemyError as exc:
        db.session.rollback()
        current_app.logger.error("node sync: database unavailable: %s", exc)
        return
    try:
        heartbeat(error)
    except SQLAlchemyError as exc:
        db.session.rollback()
        current_app.logger.error("node heartbeat: database unavailable: %s", exc)


# -- the model.published webhook ---------------------------------------------------------------


def receive(header: str | None, body: bytes, sender: str | None = None) -> tuple[int, dict]:
    """Handle a model.published delivery; (HTTP status, JSON answer).

    401: a bad, missing or stale signature. 400: a replayed delivery, a malformed body, or an
    artifact that fails verification — nothing changes. 503: the artifact could not be
    downloaded (the sender retries). 200: the node serves the current version.
    """
    logger = current_app.logger
    if not webhooks.authentic(header, body):
        logger.warning("model.published from %s refused: bad or stale signature", sender)
        return 401, {"error": "bad or stale signature"}
    if not webhooks.first_use(header):
        logger.warning("model.published from %s refused: replayed delivery", sender)
        return 400, {"error": "replayed delivery"}
    payload, errors = _parse(body)
    if errors:
        logger.warning("model.published from %s refused: %s", sender, errors)
        return 400, {"errors": errors}
    version = payload["version"]
    try:
        installed = install(version, payload["artifact_url"], payload["sha256"])
        serving = serve(version)
    except FetchError as exc:
        logger.error("model.published %s: %s", version, exc)
        return 503, {"error": str(exc)}
    except (ReleaseError, RegistryError) as exc:
        logger.warning("model.published %s refused: %s", version, exc)
        return 400, {"errors": {"artifact": [str(exc)]}}
    logger.info("model.published %s: serving %s", version, serving)
    heartbeat()
    status = "installed" if installed else "already installed"
    return 200, {"status": status, "version": version, "serving": serving}


def _parse(body: bytes) -> tuple[dict, dict]:
    try:
        payload = json.loads(body)
    except ValueError:
        return {}, {"body": ["not JSON"]}
    if not isinstance(payload, dict):
        return {}, {"body": ["expected a JSON object"]}
    errors = {}
    if payload.get("event") != "model.published":
        errors["event"] = ["expected model.published"]
    if not isinstance(payload.get("version"), str) or not VERSION_RE.match(payload["version"]):
        errors["version"] = ["expected a version name such as v3"]
    if not isinstance(payload.get("sha256"), str) or not SHA256_RE.match(payload["sha256"]):
        errors["sha256"] = ["expected 64 hexadecimal digits"]
    url = payload.get("artifact_url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        errors["artifact_url"] = ["expected an http(s) URL"]
    return payload, errors

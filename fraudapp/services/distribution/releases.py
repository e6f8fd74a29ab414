"""Model distribution: the database records which version serves; every process converges on it.

Promotions and rollbacks append to `model_releases`: the latest row is the version every prediction
node must serve. A node lacking that version downloads the artifact from the trainer (a signed
request), checks it (sha256, feature list, a model that loads) before writing anything, installs it
in its own registry and moves its CURRENT pointer; its workers follow the pointer. Nodes learn of a
release by a signed webhook (`receiver`) and, should one be missed, by comparing with the database
when they start and every NODE_SYNC_SECONDS (`agent`).

A shadowed challenger lives in the same table (actions "shadow" and "unshadow"): it is announced
and installed on every node like a release, and every worker scores with it beside the champion
(`serving.challenger_model`) without ever deciding with it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import secrets
import urllib.error
import urllib.parse
import urllib.request

from flask import current_app
from sqlalchemy import select, update

from ...extensions import db
from ...i18n import Message
from ...ml.registry import Registry, RegistryError, previous_of, verified_booster
from ...models import ModelRelease, ModelVersion
from ...signing import HEADER, artifact_message, sign
from .. import audit
from ..serving import SERVING_ACTIONS, registry, shadowed
from . import outbox
from .catalog import ReleaseError, register_if_local

ACTIONS = {"promote": "model.promoted", "rollback": "model.rolled_back"}
_SERVING = ModelRelease.action.in_(SERVING_ACTIONS)


class ArtifactError(ReleaseError):
    """A downloaded artifact that fails verification: nothing was installed."""


class FetchError(ReleaseError):
    """The artifact could not be downloaded (the trainer is down or refused us): retry later."""


# -- which version serves ----------------------------------------------------------------------


def released() -> str | None:
    """The version of the latest release recorded in the database (None before the first)."""
    return db.session.scalar(
        select(ModelRelease.version).where(_SERVING).order_by(ModelRelease.id.desc()).limit(1)
    )


def current() -> str | None:
    """The version every node must serve: the latest release, else this registry's pointer."""
    return released() or registry().current()


def previous() -> str | None:
    """The version a rollback returns to."""
    changes = [
        (row.version, row.action)
        for row in db.session.scalars(
            select(ModelRelease).where(_SERVING).order_by(ModelRelease.id)
        )
    ]
    return previous_of(changes) if changes else registry().previous()


def release(version: str, action: str, actor: str, details: dict | None = None) -> None:
    """Make a version the one every node serves: install and verify it here, record the release
    (audited), commit, move this registry's pointer, and tell the nodes by webhook — at once on the
    trainer; a release made on a prediction node is announced by the trainer's next round."""
    if action not in ACTIONS:
        raise ValueError(f"unknown release action {action!r}")
    reg = registry()
    ensure_installed(version)
    try:
        reg.load(version)  # verified here before any node is told
    except RegistryError as exc:
        raise ReleaseError(str(exc)) from exc
    _record_registry_history()
    announcer = current_app.config["ROLE"] != "web"
    db.session.add(ModelRelease(version=version, action=action, actor=actor, announced=announcer))
    if version == challenger():  # the challenger now serves: its shadow ends
        db.session.add(
            ModelRelease(version=version, action="unshadow", actor=actor, announced=True)
        )
    audit.record(ACTIONS[action], target=version, actor=actor, details=details)
    deliveries = outbox.announce(register_if_local(version)) if announcer else []
    db.session.commit()
    sync(action)
    outbox.deliver([delivery.id for delivery in deliveries])


def _record_registry_history() -> None:
    """Before the first release (or shadow) is recorded: the registry's own history comes first,
    so the database knows what serves."""
    if released() is not None:
        return
    for old_version, old_action in registry().changes():
        db.session.add(
            ModelRelease(version=old_version, action=old_action, actor="registry", announced=True)
        )


# -- the shadowed challenger --------------------------------------------------------------------


def challenger() -> str | None:
    """The version in shadow: every node scores each prediction with it too (None: no shadow)."""
    return shadowed()


def start_shadow(version: str, actor: str) -> None:
    """Put a version in shadow on every node (installed and verified here first; announced to the
    nodes like a release); audited; commits. Refused (ReleaseError) for the champion, an unknown
    version or one that does not load; a version already in shadow is left as it is."""
    champion = current()
    if champion is None:
        raise ReleaseError(Message("no version serves yet: promote one before shadowing another"))
    if version == champion:
        raise ReleaseError(
            Message(
                "%(version)s is the serving version (the champion): shadow another one",
                version=version,
            )
        )
    if version == challenger():
        return
    ensure_installed(version)
    try:
        registry().load(version)
    except RegistryError as exc:
        raise ReleaseError(str(exc)) from exc
    _record_registry_history()
    announcer = current_app.config["ROLE"] != "web"
    db.session.add(ModelRelease(version=version, action="shadow", actor=actor, announced=announcer))
    audit.record("model.shadowed", target=version, actor=actor, details={"champion": champion})
    deliveries = outbox.announce(register_if_local(version)) if announcer else []
    db.session.commit()
    outbox.deliver([delivery.id for delivery in deliveries])


def stop_shadow(actor: str) -> str:
    """End the shadow (the nodes stop scoring with the challenger within a second); the version
    that was in shadow; audited; commits. ReleaseError when none is."""
    version = challenger()
    if version is None:
        raise ReleaseError(Message("no version is in shadow"))
    db.session.add(ModelRelease(version=version, action="unshadow", actor=actor, announced=True))
    audit.record("model.unshadowed", target=version, actor=actor)
    db.session.commit()
    return version


def sync_challenger() -> str | None:
    """On a node: install the challenger unless installed already; why it could not be (the node
    goes on serving the champion alone), None when it is installed or there is none."""
    version = challenger()
    if version is None:
        return None
    try:
        ensure_installed(version)
    except (ReleaseError, RegistryError) as exc:
        db.session.rollback()
        return f"challenger {version} not installed: {exc}"
    return None


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
    serving = [row for row in pending if row.action in SERVING_ACTIONS]
    if serving and serving[-1].version == released():
        deliveries += outbox.announce(register_if_local(serving[-1].version))
    shadows = [row for row in pending if row.action == "shadow"]
    if shadows and shadows[-1].version == challenger():
        deliveries += outbox.announce(register_if_local(shadows[-1].version))
    db.session.commit()
    return len(deliveries)


# -- installing on a node ----------------------------------------------------------------------


def ensure_installed(version: str) -> None:
    """Install a version from the trainer unless this registry holds it already."""
    if version in registry().versions():
        return
    row = db.session.get(ModelVersion, version)
    if row is None:
        raise ReleaseError(Message("there is no such version"))
    install(version, row.artifact_url, row.sha256)


def install(version: str, url: str, sha256: str) -> bool:
    """Download, verify and install a version; False when it was installed already.

    Refuses (ArtifactError, nothing written) an artifact whose model text does not hash to
    `sha256`, whose metadata disagrees, whose feature list is not this code's or whose model does
    not load; an installed version with another checksum is refused too.
    """
    reg = registry()
    with _lock(reg, "install"):
        if version in reg.versions():
            if reg.meta(version).get("sha256") != sha256:
                raise ArtifactError(
                    Message(
                        "version %(version)s is installed with another checksum", version=version
                    )
                )
            return False
        data = fetch(url)
        meta = data.get("meta") if isinstance(data, dict) else None
        model_text = data.get("model") if isinstance(data, dict) else None
        if not isinstance(meta, dict) or not isinstance(model_text, str):
            raise ArtifactError(Message("%(url)s: not a model artifact", url=url))
        if data.get("version") != version or meta.get("sha256") != sha256:
            raise ArtifactError(
                Message(
                    "%(url)s: artifact is not version %(version)s with sha256 %(sha256)s",
                    url=url,
                    version=version,
                    sha256=sha256,
                )
            )
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
        raise FetchError(
            Message("FRAUDAPP_WEBHOOK_SECRET is not set: cannot authenticate to the trainer")
        )
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise FetchError(Message("%(url)s: only http(s) artifact URLs are allowed", url=url))
    nonce = secrets.token_urlsafe(16)
    signed_url = urllib.parse.urlunsplit(parts._replace(query=f"nonce={nonce}", fragment=""))
    header = sign(secret, artifact_message(parts.path, nonce))
    request = urllib.request.Request(signed_url, headers={HEADER: header})  # noqa: S310
    try:
        with urllib.request.urlopen(  # noqa: S310 (scheme checked above)
            request, timeout=current_app.config["ARTIFACT_TIMEOUT_SECONDS"]
        ) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise FetchError(
            Message("%(url)s: the trainer answered %(status)s", url=url, status=exc.code)
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise FetchError(f"{url}: {exc}") from exc
    except ValueError as exc:
        raise ArtifactError(
            Message("%(url)s: not JSON (%(reason)s)", url=url, reason=str(exc))
        ) from exc


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
        reg = registry()
        with _lock(reg, "pointer"):
            if reg.current() != announced:
                reg.set_current(announced, action="sync")
        return announced
    sync()
    return registry().current()


def sync(action: str = "sync") -> str | None:
    """Point this registry at the database's current version, installing it first if needed;
    the version switched to (None: nothing to do).

    The database is read again under the node's pointer lock, so when releases and syncs race,
    the last writer writes the latest release: no process puts back a version it read earlier.
    """
    reg = registry()
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

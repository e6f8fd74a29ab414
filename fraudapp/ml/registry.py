"""The model registry on disk: immutable numbered versions and an atomic CURRENT pointer.

Layout under the model directory::

    v1/model.txt      LightGBM text model (never pickle)
    v1/meta.json      feature names, params, threshold, windows, metrics, reference distributions,
                      library versions, sha256 of model.txt, created time
    CURRENT           the serving version's name, replaced atomically
    HISTORY           one line per pointer change, for rollback

A version folder is written under a temporary name (`.staging-*`) and renamed into place only when
complete, so a reader never sees a half-written version, a failed write (disk full) leaves nothing
behind, and an existing version is never overwritten.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np
import sklearn

from . import features

VERSION_RE = re.compile(r"^v[1-9][0-9]{0,8}$")
MODEL_FILE, META_FILE, POINTER, HISTORY = "model.txt", "meta.json", "CURRENT", "HISTORY"
STAGING_PREFIX = ".staging-"
STALE_STAGING_SECONDS = 3600  # a staging folder this old was left by a killed process


class RegistryError(Exception):
    """A version that cannot be found, read or trusted."""


@dataclass(frozen=True)
class LoadedModel:
    """A verified booster with its metadata, ready to score.

    A version declares its own features (`meta["features"]`, a subset of this code's `FEATURES`:
    a version trained before features were added keeps serving). Scoring takes the full feature
    matrix (`FEATURES` columns) and hands the booster the version's columns, picked by an index
    array computed once at load (none when the version uses them all).

    The threads of a worker share it; its booster answers one call at a time (LightGBM sets up
    shared tree state for each prediction call, and contributions recompute tree depths).
    """

    version: str
    booster: lgb.Booster
    meta: dict
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    feature_names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _columns: np.ndarray | None = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        names = tuple(self.meta.get("features") or features.FEATURES)
        columns = None if names == features.FEATURES else feature_columns(names)
        object.__setattr__(self, "feature_names", names)
        object.__setattr__(self, "_columns", columns)

    @property
    def threshold(self) -> float:
        """The decision threshold: score ≥ threshold means fraud."""
        return float(self.meta["threshold"])

    def own(self, rows: np.ndarray) -> np.ndarray:
        """The version's columns (`feature_names` order) of a full feature matrix or vector."""
        return rows if self._columns is None else rows[..., self._columns]

    def full_row(self, values: dict[str, float]) -> np.ndarray:
        """A full feature vector from a snapshot of some features by name (others 0: never read
        by a version that does not use them)."""
        return np.array([values.get(name, 0.0) for name in features.FEATURES], dtype=np.float64)

    def score(self, row: np.ndarray) -> float:
        """The fraud probability of one full feature vector (one thread, numpy in)."""
        with self._lock:
            return float(self.booster.predict(self.own(row).reshape(1, -1), num_threads=1)[0])

    def score_many(self, rows: np.ndarray, threads: int = 1) -> np.ndarray:
        """Fraud probabilities of a full feature matrix."""
        return self.score_own(self.own(rows), threads)

    def score_own(self, own: np.ndarray, threads: int = 1) -> np.ndarray:
        """Fraud probabilities of a matrix of the version's own columns (`own`)."""
        with self._lock:
            return self.booster.predict(own, num_threads=threads)

    def private_copy(self) -> LoadedModel:
        """The same model with its own booster, for long batch work that must not make the
        worker's requests wait for the shared one."""
        booster = lgb.Booster(model_str=self.booster.model_to_string())
        return LoadedModel(self.version, booster, self.meta)

    def contributions(self, rows: np.ndarray) -> np.ndarray:
        """Per row of a full feature matrix, the contributions (log-odds) of the version's
        features (`feature_names` order) to its score, bias last."""
        own = self.own(rows)
        with self._lock:
            return self.booster.predict(own, pred_contrib=True, num_threads=1)


def feature_columns(names) -> np.ndarray:
    """The positions in `FEATURES` of a version's feature names."""
    return np.array([features.FEATURES.index(name) for name in names], dtype=np.intp)


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified_booster(model_text: str, meta: dict, version: str) -> lgb.Booster:
    """The booster of a model text, after checking it against its metadata: sha256, a feature
    list this code computes (a subset of `FEATURES`, each once), and a model that loads with
    those feature names."""
    if hashlib.sha256(model_text.encode()).hexdigest() != meta.get("sha256"):
        raise RegistryError(f"version {version}: model file missing or checksum mismatch")
    names = list(meta.get("features", []))
    unknown = sorted(set(names) - set(features.FEATURES))
    if not names or unknown or len(set(names)) != len(names):
        detail = f" (unknown: {', '.join(unknown)})" if unknown else ""
        raise RegistryError(f"version {version}: feature list differs from this code's{detail}")
    try:
        booster = lgb.Booster(model_str=model_text)
    except lgb.basic.LightGBMError as exc:
        raise RegistryError(f"version {version}: unreadable model ({exc})") from exc
    if booster.feature_name() != names:
        raise RegistryError(
            f"version {version}: the model's own feature names differ from its feature list"
        )
    return booster


def previous_of(changes: list[tuple[str, str]]) -> str | None:
    """From pointer changes (version, action), oldest first, the version a rollback returns to:
    the one promoted before the current one, skipping those already rolled back (repeated
    rollbacks walk back through the promotions)."""
    served = _served(changes)
    return served[-2] if len(served) > 1 else None


def _served(changes: list[tuple[str, str]]) -> list[str]:
    served: list[str] = []
    for version, action in changes:
        if action == "rollback":
            del served[-1:]
        elif not served or served[-1] != version:
            served.append(version)
    return served


def fallback_order(changes: list[tuple[str, str]], versions: list[str], broken: str) -> list[str]:
    """The versions to try, best first, when `broken` cannot be loaded: those served before it,
    most recent first (rolled-back ones skipped, as a rollback would), then any other version on
    disk, newest first. `versions` are the complete versions on disk, oldest first."""
    on_disk = set(versions) - {broken}
    order = [v for v in reversed(_served(changes)) if v in on_disk]
    order += [v for v in reversed(versions) if v in on_disk]
    return list(dict.fromkeys(order))


def _write_synced(path: Path, text: str) -> None:
    """Write a file and flush it to disk (a full disk shows here, not after the rename)."""
    with open(path, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


class Registry:
    """Numbered model versions in a folder, one of them current."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path(self, version: str) -> Path:
        """The folder of a version, after checking the name cannot escape the registry."""
        if not isinstance(version, str) or not VERSION_RE.match(version):
            raise RegistryError(f"invalid version name {version!r} (expected v1, v2, ...)")
        return self.root / version

    def versions(self) -> list[str]:
        """All complete versions, oldest first."""
        if not self.root.is_dir():
            return []
        names = [
            p.name
            for p in self.root.iterdir()
            if VERSION_RE.match(p.name) and (p / META_FILE).is_file()
        ]
        return sorted(names, key=lambda name: int(name[1:]))

    def meta(self, version: str) -> dict:
        """A version's metadata."""
        try:
            return json.loads((self.path(version) / META_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise RegistryError(f"version {version}: cannot read metadata ({exc})") from exc

    def publish(self, booster: lgb.Booster, meta: dict) -> str:
        """Write a new immutable version from a booster and its metadata; returns its name."""
        return self.install(booster.model_to_string(), {**meta, **self._library_versions()})

    def install(self, model_text: str, meta: dict, version: str | None = None) -> str:
        """Write model text and metadata as a version (the next number unless named).

        Everything is written to a staging folder renamed into place when complete; a write
        that fails (disk full, no permission) removes it and raises RegistryError: nothing is
        left behind.
        """
        if version is not None:
            self.path(version)  # the name is checked before anything is written
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.remove_stale_staging()
            staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.root))
        except OSError as exc:
            raise RegistryError(f"cannot write a version in {self.root}: {exc}") from exc
        try:
            return self._install_staged(staging, model_text, meta, version)
        except OSError as exc:
            raise RegistryError(
                f"cannot write a version in {self.root}: {exc}; nothing was installed"
            ) from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # gone already when renamed into place

    def _install_staged(self, staging: Path, model_text: str, meta: dict, version: str | None):
        _write_synced(staging / MODEL_FILE, model_text)
        meta = {**meta, "sha256": sha256_of(staging / MODEL_FILE)}
        meta.setdefault("created_at", dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
        while True:
            name = version or self._next_name()
            meta["version"] = name
            _write_synced(staging / META_FILE, json.dumps(meta, indent=1, sort_keys=True))
            try:
                os.rename(staging, self.path(name))
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                if version:
                    raise RegistryError(f"version {version} already exists") from exc
                continue  # another process took this number: take the next one
            with contextlib.suppress(OSError):  # make the rename itself durable
                fd = os.open(self.root, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            return name

    def remove_stale_staging(self) -> None:
        """Remove staging folders left by a process killed while writing a version."""
        cutoff = time.time() - STALE_STAGING_SECONDS
        for path in self.root.glob(STAGING_PREFIX + "*"):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    shutil.rmtree(path)

    def _next_name(self) -> str:
        existing = [int(p.name[1:]) for p in self.root.iterdir() if VERSION_RE.match(p.name)]
        return f"v{max(existing, default=0) + 1}"

    @staticmethod
    def _library_versions() -> dict:
        return {
            "libraries": {
                "lightgbm": lgb.__version__,
                "numpy": np.__version__,
                "scikit-learn": sklearn.__version__,
            }
        }

    def load(self, version: str) -> LoadedModel:
        """Load a version after checking its checksum and feature list."""
        meta = self.meta(version)
        try:
            model_text = (self.path(version) / MODEL_FILE).read_text()
        except OSError as exc:
            raise RegistryError(f"version {version}: model file missing ({exc})") from exc
        return LoadedModel(version, verified_booster(model_text, meta, version), meta)

    def current(self) -> str | None:
        """The name in the CURRENT pointer, or None when nothing serves yet."""
        try:
            name = (self.root / POINTER).read_text().strip()
        except FileNotFoundError:
            return None
        return name or None

    def set_current(self, version: str, *, verify: bool = True, action: str = "promote") -> None:
        """Point CURRENT at a version (checked loadable first), atomically; logged in HISTORY."""
        if verify:
            self.load(version)
        self._write_atomic(POINTER, version + "\n")
        with open(self.root / HISTORY, "a") as handle:
            stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            handle.write(f"{stamp} {version} {action}\n")

    def changes(self) -> list[tuple[str, str]]:
        """The pointer's changes (version, action), oldest first, from HISTORY."""
        try:
            lines = (self.root / HISTORY).read_text().splitlines()
        except FileNotFoundError:
            return []
        changes = []
        for line in lines:
            _, version, *action = line.split()
            changes.append((version, action[0] if action else "promote"))
        return changes

    def previous(self) -> str | None:
        """The version to roll back to (see `previous_of`)."""
        versions = set(self.versions())
        return previous_of([c for c in self.changes() if c[0] in versions])

    def _write_atomic(self, name: str, text: str) -> None:
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{name}-", dir=self.root)
        except OSError as exc:
            raise RegistryError(f"cannot write {name} in {self.root}: {exc}") from exc
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.root / name)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise RegistryError(f"cannot write {name} in {self.root}: {exc}") from exc

    def pointer_stamp(self) -> tuple[int, int] | None:
        """A cheap fingerprint of the pointer file (inode, mtime) to notice a change."""
        try:
            st = os.stat(self.root / POINTER)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns)


@dataclass(frozen=True)
class ServingState:
    """What one process serves: the version scoring now, the released one (CURRENT), and why
    they differ when the released one cannot be loaded."""

    serving: str | None
    released: str | None
    problem: str | None = None

    @property
    def degraded(self) -> bool:
        """True while the released version cannot be served (a fallback or nothing serves)."""
        return self.problem is not None


class ServingModel:
    """The model one process serves, following the CURRENT pointer.

    A stat of the pointer, at most once per `check_interval` seconds, notices a promotion; the new
    version is loaded fully before it replaces the old one. When the released version cannot be
    loaded (a damaged file), the process keeps serving the version it has — or, on a fresh start,
    the newest intact version it finds (see `fallback_order`) — records the problem, and retries
    the released version every `retry_interval` seconds, so a restored file heals it without a
    restart. One log line when it degrades, one when it recovers; `on_change(state)` is called
    whenever the state changes.
    """

    def __init__(
        self,
        registry: Registry,
        check_interval: float = 1.0,
        logger=None,
        retry_interval: float = 5.0,
        on_change: Callable[[ServingState], None] | None = None,
    ):
        self.registry = registry
        self.check_interval = check_interval
        self.retry_interval = retry_interval
        self.logger = logger or logging.getLogger(__name__)
        self.on_change = on_change
        self._model: LoadedModel | None = None
        self._released: str | None = None
        self.problem: str | None = None
        self._stamp: tuple[int, int] | None | bool = False  # False: never checked yet
        self._checked_at = float("-inf")
        self._retry_at = float("-inf")
        self._reported: ServingState | None = None
        self._lock = threading.Lock()
        self._versions: dict[str, LoadedModel] = {}

    def get(self) -> LoadedModel | None:
        """The model to score with now (None when no version is released or none loads)."""
        now = time.monotonic()
        if self._model is None or now - self._checked_at >= self.check_interval:
            self._refresh(now)  # with no model yet, wait for a load another thread is doing
        return self._model

    def state(self) -> ServingState:
        """The serving version, the released version and the problem, the pointer checked now
        (retries of a released version that failed stay throttled)."""
        self._refresh(time.monotonic(), force=True)
        model = self._model
        return ServingState(model and model.version, self._released, self.problem)

    def version(self, name: str) -> LoadedModel:
        """Any version of the registry, loaded once (versions are immutable; a few are kept)."""
        model = self._versions.get(name)
        if model is None:
            model = self.registry.load(name)
            with self._lock:
                while len(self._versions) >= 8:
                    del self._versions[next(iter(self._versions))]
                self._versions[name] = model
        return model

    def _refresh(self, now: float, force: bool = False) -> None:
        with self._lock:
            if not force and now - self._checked_at < self.check_interval:
                return
            self._checked_at = now
            try:
                stamp = self.registry.pointer_stamp()
            except OSError as exc:
                self._settle(f"cannot read the {POINTER} pointer ({exc})", now)
                return
            if stamp != self._stamp or (self.problem is not None and now >= self._retry_at):
                self._stamp = stamp
                self._follow(now)

    def _follow(self, now: float) -> None:
        """Serve the released version if it loads; else keep (or find) a fallback."""
        try:
            released = self.registry.current()
        except OSError as exc:
            self._settle(f"cannot read the {POINTER} pointer ({exc})", now)
            return
        self._released = released
        if released is None or (self._model and self._model.version == released):
            self._settle(None, now)
            return
        try:
            self._model = self.registry.load(released)
        except RegistryError as exc:
            if self._model is None:
                self._model = self._fallback(released)
            self._settle(str(exc), now)
            return
        self._settle(None, now)

    def _fallback(self, broken: str) -> LoadedModel | None:
        try:
            versions = self.registry.versions()
        except OSError:
            return None
        try:
            changes = self.registry.changes()
        except (OSError, ValueError):  # a damaged HISTORY: the newest version first
            changes = []
        for name in fallback_order(changes, versions, broken):
            try:
                return self.registry.load(name)
            except RegistryError:
                continue
        return None

    def _settle(self, problem: str | None, now: float) -> None:
        """Record the outcome of a check: log a change of health, report a change of state."""
        serving = self._model.version if self._model else None
        if problem is not None:
            self._retry_at = now + self.retry_interval
            if problem != self.problem:
                self.logger.error(
                    "model %s cannot be served (%s): serving %s instead; retrying every %g s",
                    self._released,
                    problem,
                    serving or "nothing",
                    self.retry_interval,
                )
        elif self.problem is not None:
            self.logger.warning("model %s loads again and serves (recovered)", serving)
        self.problem = problem
        state = ServingState(serving, self._released, problem)
        if state != self._reported:
            self._reported = state
            if self.on_change:
                self.on_change(state)

"""The model registry on disk: immutable numbered versions and an atomic CURRENT pointer.

Layout under the model directory::

    v1/model.txt      LightGBM text model (never pickle)
    v1/meta.json      feature names, params, threshold, windows, metrics, reference distributions,
                      library versions, sha256 of model.txt, created time
    CURRENT           the serving version's name, replaced atomically
    HISTORY           one line per pointer change, for rollback

A version folder is written under a temporary name and renamed into place, so a reader never sees a
half-written version, and an existing version is never overwritten.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np
import sklearn

from . import features

VERSION_RE = re.compile(r"^v[1-9][0-9]{0,8}$")
MODEL_FILE, META_FILE, POINTER, HISTORY = "model.txt", "meta.json", "CURRENT", "HISTORY"


class RegistryError(Exception):
    """A version that cannot be found, read or trusted."""


@dataclass(frozen=True)
class LoadedModel:
    """A verified booster with its metadata, ready to score.

    The threads of a worker share it; its booster answers one call at a time (LightGBM sets up
    shared tree state for each prediction call, and contributions recompute tree depths).
    """

    version: str
    booster: lgb.Booster
    meta: dict
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def threshold(self) -> float:
        """The decision threshold: score ≥ threshold means fraud."""
        return float(self.meta["threshold"])

    def score(self, row: np.ndarray) -> float:
        """The fraud probability of one feature vector (one thread, numpy in)."""
        with self._lock:
            return float(self.booster.predict(row.reshape(1, -1), num_threads=1)[0])

    def score_many(self, rows: np.ndarray) -> np.ndarray:
        """Fraud probabilities of a feature matrix."""
        with self._lock:
            return self.booster.predict(rows, num_threads=1)

    def contributions(self, row: np.ndarray) -> np.ndarray:
        """Per-feature contributions (log-odds) to one row's score, bias last."""
        with self._lock:
            return self.booster.predict(row.reshape(1, -1), pred_contrib=True, num_threads=1)[0]


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified_booster(model_text: str, meta: dict, version: str) -> lgb.Booster:
    """The booster of a model text, after checking it against its metadata: sha256, the feature
    list of this code, and a model that loads with those feature names."""
    if hashlib.sha256(model_text.encode()).hexdigest() != meta.get("sha256"):
        raise RegistryError(f"version {version}: model file missing or checksum mismatch")
    if list(meta.get("features", [])) != list(features.FEATURES):
        raise RegistryError(f"version {version}: feature list differs from this code's")
    try:
        booster = lgb.Booster(model_str=model_text)
    except lgb.basic.LightGBMError as exc:
        raise RegistryError(f"version {version}: unreadable model ({exc})") from exc
    if booster.feature_name() != list(features.FEATURES):
        raise RegistryError(f"version {version}: the model's own feature names differ")
    return booster


def previous_of(changes: list[tuple[str, str]]) -> str | None:
    """From pointer changes (version, action), oldest first, the version a rollback returns to:
    the one promoted before the current one, skipping those already rolled back (repeated
    rollbacks walk back through the promotions)."""
    served: list[str] = []
    for version, action in changes:
        if action == "rollback":
            del served[-1:]
        elif not served or served[-1] != version:
            served.append(version)
    return served[-2] if len(served) > 1 else None


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
        """Write model text and metadata as a version (the next number unless named)."""
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.root))
        (staging / MODEL_FILE).write_text(model_text)
        meta = {**meta, "sha256": sha256_of(staging / MODEL_FILE)}
        meta.setdefault("created_at", dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
        while True:
            name = version or self._next_name()
            meta["version"] = name
            (staging / META_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True))
            try:
                os.rename(staging, self.path(name))
                return name
            except OSError as exc:
                if version:
                    raise RegistryError(f"version {version} already exists") from exc

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
        fd, tmp = tempfile.mkstemp(prefix=f".{name}-", dir=self.root)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.root / name)

    def pointer_stamp(self) -> tuple[int, int] | None:
        """A cheap fingerprint of the pointer file (inode, mtime) to notice a change."""
        try:
            st = os.stat(self.root / POINTER)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns)


class ServingModel:
    """The model one process serves, following the CURRENT pointer.

    A stat of the pointer, at most once per `check_interval` seconds, notices a promotion; the new
    version is loaded fully before it replaces the old one, and a version that fails to load is
    refused while the previous one keeps serving.
    """

    def __init__(self, registry: Registry, check_interval: float = 1.0, logger=None):
        self.registry = registry
        self.check_interval = check_interval
        self.logger = logger
        self._model: LoadedModel | None = None
        self._stamp: tuple[int, int] | None = None
        self._checked_at = float("-inf")
        self._lock = threading.Lock()
        self._versions: dict[str, LoadedModel] = {}
        self.last_error: str | None = None

    def get(self) -> LoadedModel | None:
        """The model to score with now (None when the registry has no current version)."""
        now = time.monotonic()
        if now - self._checked_at >= self.check_interval:
            self._refresh(now)
        return self._model

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

    def _refresh(self, now: float) -> None:
        with self._lock:
            if now - self._checked_at < self.check_interval:
                return
            self._checked_at = now
            stamp = self.registry.pointer_stamp()
            if stamp == self._stamp:
                return
            self._stamp = stamp
            self._swap_to(self.registry.current())

    def _swap_to(self, version: str | None) -> None:
        if version is None or (self._model and self._model.version == version):
            return
        try:
            self._model = self.registry.load(version)
            self.last_error = None
        except RegistryError as exc:
            self.last_error = str(exc)
            if self.logger:
                self.logger.error(
                    "model %s refused, still serving %s: %s",
                    version,
                    self._model.version if self._model else "nothing",
                    exc,
                )

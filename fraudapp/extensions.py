"""Flask extensions, created unbound and wired to the app in the factory."""

import threading
import weakref

from flask_babel import Babel, lazy_gettext
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from limits.storage import MemoryStorage
from sqlalchemy.orm import DeclarativeBase


class SweptMemoryStorage(MemoryStorage):
    """The rate limits' in-memory storage (`memory://`) without a thread per request.

    limits' MemoryStorage starts a new threading.Timer to sweep expired keys 10 ms after any
    counted request when the previous one has finished: one OS thread created per request or so
    (about 950 in 2,000 API requests under strace), each waiting for a CPU on a busy machine while
    the request that started it waits for it to start. Expired counters are dropped when they are
    read anyway; this sweeps the rest (memory only) from one long-lived thread once a second.
    Registered for the `memory` scheme, so RATELIMIT_STORAGE_URI=memory:// uses it.
    """

    STORAGE_SCHEME = ["memory"]
    SWEEP_SECONDS = 1.0

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: str):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self.timer.cancel()
        sweeper = threading.Thread(
            target=_sweep, args=(weakref.ref(self),), daemon=True, name="fraudapp-limits-sweep"
        )
        sweeper.start()

    def _MemoryStorage__schedule_expiry(self) -> None:  # noqa: N802 (the parent's private name)
        """Nothing to schedule: the sweeper thread runs already."""


def _sweep(ref: weakref.ref) -> None:
    """Expire old counters once a second, for as long as the storage exists."""
    stop = threading.Event()
    while not stop.wait(SweptMemoryStorage.SWEEP_SECONDS):
        storage = ref()
        if storage is None:
            return
        storage._MemoryStorage__expire_events()
        del storage


class Base(DeclarativeBase):
    """Declarative base of every table."""


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
babel = Babel()
csrf = CSRFProtect()
limiter = Limiter(get_remote_address)  # no default limits; the API sets its own (api/limits.py)
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = lazy_gettext("Please log in to open that page.")
login_manager.login_message_category = "info"

"""Nothing under ``.forkman/`` is trusted because it exists.

The state folder is forkman's own: journals of interrupted transactions, fork
histories, caches that let ``forkman check`` skip work. Whoever can write it
can make forkman act: a journal tells recovery what to move where, a cache
tells ``check`` which trees were already proven. Three rules keep it forkman's:

1. **Never from the repository.** When git tracks anything under
   ``.forkman/`` (or ``.forkman`` itself: a symlink, a submodule), or when the
   folder or one of its subfolders is a symlink, every command that reads state
   refuses (:func:`require_trusted_state`, exit 2) and says how to remove it.
2. **Journals are validated** before recovery touches anything (see
   :mod:`forkman.store.txn`).
3. **Caches are sealed** (:func:`seal`, :func:`unseal`): a MAC (HMAC-SHA256)
   under a per-user secret key kept outside every project (:func:`key_path`,
   mode 0600), over the cache's purpose, its scope (the project root it was
   written for, or the content key of a shared cache entry) and its bytes. A
   cache that fails verification is ignored and recomputed, never trusted; its
   payload is JSON, never ``marshal`` or ``pickle``.

This module imports only :mod:`os` and the builtin sha256 (it runs on the quick
path of ``forkman check``).
"""

from __future__ import annotations

import os

from ..core.git import finish, spawn

try:  # the builtin module imports in a fraction of hashlib's time
    from _sha256 import sha256 as _sha256  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - Python 3.12+ names it _sha2
    from hashlib import sha256 as _sha256

from _operator import _compare_digest as _same

STATE_DIR = ".forkman"
# Subfolders forkman writes into: a symlink there would send its writes elsewhere.
STATE_SUBDIRS = ("txn", "forks", "locks", "tmp")
REMOVE_HINT = (
    "forkman's state is never taken from the repository: remove it from git and from "
    "disk with `git rm -r --cached .forkman && rm -rf .forkman`, commit, and keep "
    "`.forkman/` ignored (forkman rebuilds its state from forkman.lock)"
)


_MAGIC = b"forkman-sealed-1\n"
_MAC_SIZE = 32
_KEY_SIZE = 32


def _security_error(message: str, hint: str) -> Exception:
    from ..core.errors import SecurityError

    return SecurityError(message, hint=hint)


# -- rule 1: state that git tracks or that leads elsewhere ------------------------------


def state_symlink(root: str) -> str | None:
    """The state folder or subfolder (relative) that is a symlink or not a folder, or None."""
    state = os.path.join(root, STATE_DIR)
    try:
        st = os.lstat(state)
    except FileNotFoundError:
        return None
    import stat

    if not stat.S_ISDIR(st.st_mode):
        return STATE_DIR
    for sub in STATE_SUBDIRS:
        if os.path.islink(os.path.join(state, sub)):
            return f"{STATE_DIR}/{sub}"
    return None


def tracked_state(root: str) -> list[str]:
    """What git's index holds at or under ``.forkman`` in the project at `root`.

    Empty outside a git work tree (nothing there came from a repository).
    """
    try:
        # `-C`, not a working directory: spawn() would chdir the whole process, and
        # this runs in worker threads too
        pid, fd = spawn(["git", "-C", root, "ls-files", "-z", "--cached", "--", STATE_DIR])
    except OSError:
        return []
    code, out = finish(pid, fd)
    if code != 0:
        return []
    return [os.fsdecode(p) for p in out.split(b"\0") if p]


def require_trusted_state(root: str | os.PathLike[str]) -> None:
    """Refuse (SecurityError, exit 2) state that git tracks or that is reached through a symlink."""
    root = os.path.abspath(os.fspath(root))
    if not os.path.lexists(os.path.join(root, STATE_DIR)):
        return
    tracked = tracked_state(root)
    if tracked:
        shown = ", ".join(tracked[:3]) + (
            f" and {len(tracked) - 3} more" if len(tracked) > 3 else ""
        )
        raise _security_error(
            f"git tracks {len(tracked)} path(s) of forkman's state folder .forkman/ ({shown}): "
            "a commit supplied them, so forkman will not read or act on them",
            REMOVE_HINT,
        )
    link = state_symlink(root)
    if link is not None:
        raise _security_error(
            f"{link} in {root} is a symlink or not a folder: forkman's state must be a "
            "real folder of this project",
            f"remove it (`rm {link}`); forkman rebuilds its state from forkman.lock",
        )


# -- rule 3: sealed caches ---------------------------------------------------------------


def key_path() -> str:
    """The per-user secret key that seals caches (outside every project and cache)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(base, "forkman", "cache.key")


_KEYS: dict[str, bytes | None] = {}


def _read_key(path: str) -> bytes | None:
    """The key at `path` if it is a regular file of ours that nobody else can read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        import stat

        if (
            not stat.S_ISREG(st.st_mode)
            or st.st_uid != os.getuid()
            or st.st_mode & 0o077
            or st.st_size != _KEY_SIZE
        ):
            return None
        data = os.read(fd, _KEY_SIZE + 1)
    finally:
        os.close(fd)
    return data if len(data) == _KEY_SIZE else None


def _create_key(path: str) -> bytes | None:
    """Make the key (mode 0600) unless another process just did; the key in place."""
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, os.urandom(_KEY_SIZE))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # never replaces a key another process made first
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    except OSError:
        return None
    return _read_key(path)


def secret_key() -> bytes | None:
    """This user's cache key (made on first use); None when it cannot be had safely.

    Without a key no cache verifies: forkman then does the full work every time.
    """
    path = key_path()
    if path not in _KEYS:
        key = _read_key(path)
        if key is None and not os.path.lexists(path):
            key = _create_key(path)
        _KEYS[path] = key
    return _KEYS[path]


def _mac(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 (RFC 2104) with the builtin sha256."""
    block = key.ljust(64, b"\0")
    inner = _sha256(bytes(b ^ 0x36 for b in block) + message).digest()
    return bytes(_sha256(bytes(b ^ 0x5C for b in block) + inner).digest())


def _message(purpose: str, scope: str, payload: bytes) -> bytes:
    return b"\0".join([_MAGIC, purpose.encode(), os.fsencode(scope), payload])


def seal(purpose: str, scope: str, payload: bytes) -> bytes | None:
    """`payload` with a MAC binding it to `purpose`, `scope` and this user; None without a key."""
    key = secret_key()
    if key is None:
        return None
    return _MAGIC + _mac(key, _message(purpose, scope, payload)) + payload


def unseal(purpose: str, scope: str, blob: bytes | None) -> bytes | None:
    """The payload of a sealed `blob` if its MAC verifies for `purpose` and `scope`, else None."""
    if blob is None or not blob.startswith(_MAGIC):
        return None
    key = secret_key()
    if key is None:
        return None
    start = len(_MAGIC)
    mac, payload = blob[start : start + _MAC_SIZE], blob[start + _MAC_SIZE :]
    if not _same(mac, _mac(key, _message(purpose, scope, payload))):
        return None
    return payload


def read_sealed(path: str, purpose: str, scope: str) -> bytes | None:
    """The verified payload of the sealed file at `path` (never through a symlink), or None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    return unseal(purpose, scope, b"".join(chunks))


def write_sealed(path: str, purpose: str, scope: str, payload: bytes) -> bool:
    """Seal `payload` into `path` atomically (a lost cache only costs time); whether it was."""
    blob = seal(purpose, scope, payload)
    if blob is None:
        return False
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            view = memoryview(blob)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        try:  # noqa: SIM105 - contextlib costs an import on the quick path
            os.unlink(tmp)
        except OSError:
            pass
        return False
    return True


def read_cache(path: str | os.PathLike[str], purpose: str) -> object:
    """The JSON value of the sealed cache file `path` (bound to that path), or None."""
    where = os.path.abspath(os.fspath(path))
    payload = read_sealed(where, purpose, where)
    if payload is None:
        return None
    import json

    try:
        return json.loads(payload)
    except ValueError:
        return None


def write_cache(path: str | os.PathLike[str], purpose: str, value: object) -> bool:
    """Seal the JSON of `value` into the cache file `path`; False if it cannot be stored."""
    import json

    try:
        payload = json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError):
        return False  # data JSON cannot hold (e.g. datetimes): computed again next time
    where = os.path.abspath(os.fspath(path))
    return write_sealed(where, purpose, where, payload)

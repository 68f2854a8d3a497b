"""Finding redis-server and the PostgreSQL server binaries, installing what is missing (and only
that) with apt-get when we are root on Debian/Ubuntu."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, overload

MIN_REDIS = 7
MIN_POSTGRES = 15
APT_PACKAGES = ("redis-server", "postgresql")
_WHAT = {
    "redis-server": f"redis-server (>= {MIN_REDIS})",
    "postgresql": f"postgresql-{MIN_POSTGRES} (or newer)",
}


def install_hint(packages: Sequence[str]) -> str:
    """What to install for ``packages`` (of APT_PACKAGES): the error names only what is missing."""
    wanted = [p for p in APT_PACKAGES if p in packages]
    what = " and ".join(_WHAT[p] for p in wanted)
    return f"install {what}: apt-get install -y {' '.join(wanted)}"


INSTALL_HINT = install_hint(APT_PACKAGES)


class MissingBinaries(RuntimeError):
    """redis-server or the PostgreSQL server binaries are missing (or too old) and cannot be
    installed from here; the message says what to install."""


# --------------------------------------------------------------------------------------------
# finding (and installing) the binaries


def _version(argv: Sequence[str], pattern: str) -> int | None:
    """Major version printed by ``argv`` (e.g. ``redis-server --version``), or None."""
    try:
        out = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(pattern, out)
    return int(m.group(1)) if m else None


def _redis_version(redis_server: Path) -> int | None:
    """Major version of ``redis_server``: Redis < 7 lacks functions the engine loads."""
    return _version([str(redis_server), "--version"], r"v=(\d+)\.")


def _postgres_version(bin_dir: Path) -> int | None:
    """Major version of the server in ``bin_dir``: several may be installed side by side."""
    return _version([str(bin_dir / "postgres"), "--version"], r"\(PostgreSQL\)\s+(\d+)")


def _default_pg_candidates() -> list[Path]:
    """Usual places of PostgreSQL server binaries (Debian/Ubuntu, RHEL, source builds)."""
    found: list[Path] = []
    for pattern in ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin"):
        found.extend(Path("/").glob(pattern.lstrip("/")))
    found.append(Path("/usr/local/pgsql/bin"))
    return found


def _pg_bin_dirs(path: str | None, candidates: Sequence[Path] | None) -> list[Path]:
    """Folders that may hold the server binaries, in order: Debian keeps them off PATH."""
    dirs: list[Path] = []
    pg_config = shutil.which("pg_config", path=path)
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=30, check=False
            ).stdout.strip()
            if out:
                dirs.append(Path(out))
    dirs.extend(_default_pg_candidates() if candidates is None else candidates)
    postgres = shutil.which("postgres", path=path)
    if postgres:
        dirs.append(Path(postgres).resolve().parent)
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


_PG_TOOLS = ("postgres", "initdb", "createdb", "dropdb")


def _find(
    path: str | None,
    pg_candidates: Sequence[Path] | None,
    need_redis: bool,
    need_postgres: bool,
) -> tuple[Path | None, Path | None, list[str]]:
    """(redis-server, postgres bin dir, problems); a None is missing or too old."""
    problems: list[str] = []
    redis_path: Path | None = None
    pg_bin: Path | None = None
    if need_redis:
        which = shutil.which("redis-server", path=path)
        if which is None:
            problems.append("redis-server not found on PATH")
        else:
            version = _redis_version(Path(which))
            if version is None or version < MIN_REDIS:
                problems.append(
                    f"{which} is Redis {version if version is not None else '(unknown)'}, "
                    f"need >= {MIN_REDIS}"
                )
            else:
                redis_path = Path(which)
    if need_postgres:
        best: tuple[int, Path] | None = None
        too_old: list[str] = []
        searched = _pg_bin_dirs(path, pg_candidates)
        for d in searched:
            if not all(os.access(d / tool, os.X_OK) for tool in _PG_TOOLS):
                continue
            version = _postgres_version(d)
            if version is None or version < MIN_POSTGRES:
                too_old.append(f"{d} is PostgreSQL {version}")
                continue
            if best is None or version > best[0]:
                best = (version, d)
        if best is not None:
            pg_bin = best[1]
        elif too_old:
            problems.append(f"{'; '.join(too_old)}, need >= {MIN_POSTGRES}")
        else:
            where = ", ".join(str(d) for d in searched) or "nothing to search"
            problems.append(
                f"PostgreSQL server binaries ({', '.join(_PG_TOOLS)}) not found "
                f"(searched pg_config --bindir, postgres on PATH and {where})"
            )
    return redis_path, pg_bin, problems


def apt_packages(
    need_redis: bool, need_postgres: bool, redis_found: bool, pg_found: bool
) -> list[str]:
    """The Debian packages to install (and to name in the error): only those of the servers
    needed and not found (a too old one counts as not found), so nothing else is touched."""
    wanted: list[str] = []
    if need_redis and not redis_found:
        wanted.append(APT_PACKAGES[0])
    if need_postgres and not pg_found:
        wanted.append(APT_PACKAGES[1])
    return wanted


def _apt_install(apt_get: str, packages: Sequence[str]) -> None:
    """``apt-get update`` then install ``packages``, non-interactively (no tty in CI)."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    print(
        f"devservers: installing {' '.join(packages)} with apt-get ...",
        file=sys.stderr,
        flush=True,
    )
    for argv in (
        [apt_get, "update"],
        [apt_get, "install", "-y", *packages],
    ):
        result = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, check=False)
        if result.returncode != 0:
            raise MissingBinaries(
                f"`{' '.join(argv)}` failed with exit code {result.returncode}; "
                f"{install_hint(packages)}"
            )


def _ensure(
    *,
    path: str | None,
    pg_candidates: Sequence[Path] | None,
    install: bool,
    need_redis: bool,
    need_postgres: bool,
) -> tuple[Path | None, Path | None]:
    """Find what is needed, install what is missing if we may; None for what is not needed."""
    redis_path, pg_bin, problems = _find(path, pg_candidates, need_redis, need_postgres)
    if not problems:
        return redis_path, pg_bin
    packages = apt_packages(need_redis, need_postgres, redis_path is not None, pg_bin is not None)
    apt_get = shutil.which("apt-get", path=path)
    can_install = install and os.geteuid() == 0 and apt_get is not None
    if can_install and apt_get is not None:
        _apt_install(apt_get, packages)
        redis_path, pg_bin, problems = _find(path, pg_candidates, need_redis, need_postgres)
        if not problems:
            return redis_path, pg_bin
        packages = apt_packages(
            need_redis, need_postgres, redis_path is not None, pg_bin is not None
        )
        why = "still missing after apt-get install"
    elif not install:
        why = "automatic installation disabled"
    elif os.geteuid() != 0:
        why = "not root, so cannot install them"
    else:
        why = "no apt-get (not Debian/Ubuntu), so cannot install them"
    raise MissingBinaries(f"{'; '.join(problems)} ({why}). To fix: {install_hint(packages)}")


@overload
def ensure_binaries(
    *,
    path: str | None = None,
    pg_candidates: Sequence[Path] | None = None,
    install: bool = True,
    redis: Literal[True] = True,
    postgres: Literal[True] = True,
) -> tuple[Path, Path]: ...


@overload
def ensure_binaries(
    *,
    path: str | None = None,
    pg_candidates: Sequence[Path] | None = None,
    install: bool = True,
    redis: bool = True,
    postgres: bool = True,
) -> tuple[Path | None, Path | None]: ...


def ensure_binaries(
    *,
    path: str | None = None,
    pg_candidates: Sequence[Path] | None = None,
    install: bool = True,
    redis: bool = True,
    postgres: bool = True,
) -> tuple[Path | None, Path | None]:
    """Return (redis-server path, PostgreSQL bin dir), installing them with apt-get if needed.

    ``redis=False`` / ``postgres=False``: that server is not needed (a URL replaces it), so it
    is neither looked for nor installed, and its place in the result is None.  ``path`` is the
    search PATH (default: ``$PATH``; apt-get is looked up there too) and ``pg_candidates`` the
    directories tried for the PostgreSQL server binaries besides ``pg_config --bindir`` and
    ``postgres`` on PATH (default: ``/usr/lib/postgresql/*/bin`` and the like).  When something
    needed is missing and we are root with apt-get (and ``install``), run ``apt-get update`` and
    ``apt-get install -y`` with the missing package only; raise :class:`MissingBinaries` (naming
    only what is missing) if it is still missing or older than Redis 7 / PostgreSQL 15.
    """
    return _ensure(
        path=path,
        pg_candidates=pg_candidates,
        install=install,
        need_redis=redis,
        need_postgres=postgres,
    )


def ensure_needed(*, redis: bool, postgres: bool) -> None:
    """Same as ``ensure_binaries(redis=..., postgres=...)`` without a result (kept for callers
    that only need the servers to be installable)."""
    ensure_binaries(redis=redis, postgres=postgres)


_lookup_lock = threading.Lock()
_lookup_cache: dict[str, Path] = {}


def _default_binary(kind: str) -> Path:
    """redis-server (``kind="redis"``) or the Postgres bin dir, found (or installed) once."""
    with _lookup_lock:
        if kind not in _lookup_cache:
            redis_found, pg_found = ensure_binaries(
                redis=kind == "redis", postgres=kind == "postgres"
            )
            found = redis_found if kind == "redis" else pg_found
            assert found is not None
            _lookup_cache[kind] = found
        return _lookup_cache[kind]


def _default_redis_server() -> Path:
    """redis-server for a RedisServer given none (found once per process)."""
    return _default_binary("redis")


def _default_pg_bin() -> Path:
    """The PostgreSQL bin dir for a PostgresServer given none (found once per process)."""
    return _default_binary("postgres")

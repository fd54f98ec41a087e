"""`rnnkit predict` and `rnnkit generate`: a trained model on raw input, for any task."""

from __future__ import annotations

import sys
from pathlib import Path

import typer


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=code)


def _file_lines(file: Path) -> tuple[list[str], str]:
    """The non-blank lines of a text file, or [] and why it is not one."""
    try:
        lines = file.read_text("utf-8-sig").splitlines()  # a byte-order mark is no text
    except OSError as e:
        return [], f"cannot read {file}: {e.strerror or e}"
    except UnicodeDecodeError as e:
        return [], f"{file}: not UTF-8 text (byte {e.start}: {e.reason}); give a text file"
    if any("\x00" in t for t in lines):
        return [], f"{file}: holds NUL bytes; give text, not a binary file"
    return [t for t in lines if t.strip()], ""


def _lines(texts: list[str] | None, file: Path | None) -> list[str]:
    if file is not None:
        lines, problem = _file_lines(file)
        if problem:
            _fail(problem, 2)
    elif texts:
        lines = list(texts)
    else:
        if sys.stdin is None or sys.stdin.closed:
            _fail("standard input is closed; give TEXT or --file FILE")
        try:
            lines = sys.stdin.read().splitlines()
        except UnicodeDecodeError as e:
            _fail(f"standard input: not UTF-8 text ({e.reason})", 2)
        except (OSError, ValueError) as e:  # closed (ValueError) or unreadable standard input
            _fail(f"cannot read standard input: {getattr(e, 'strerror', None) or e}", 2)
    if any("\x00" in t for t in lines):
        _fail(f"{file or 'the input'}: holds NUL bytes; give text, not a binary file", 2)
    if lines:
        lines[0] = lines[0].removeprefix("\ufeff")  # a byte-order mark is no text
    return [t for t in lines if t.strip()]


def predict(
    run_dir: Path = typer.Argument(..., help="run directory of a trained model"),
    texts: list[str] = typer.Argument(None, help="texts to predict on (default: standard input)"),
    file: Path | None = typer.Option(
        None,
        "--file",
        "-f",
        help="predict on each line of FILE (each case, for a model of sequences)",
    ),
    which: str = typer.Option("best", help="best or latest checkpoint"),
    items: list[str] = typer.Option(
        None,
        "--items",
        help="a history of item ids separated by commas (50,172,133), for a model of item "
        "sequences; repeat for several histories",
    ),
) -> None:
    """Predict for each text, line of FILE or line of stdin, with the run's saved codec.

    A model of sequences of numbers or symbols reads FILE in its own formats instead (.ts,
    FASTA, CSV, JSONL, .npy: one case per record); a model of item sequences reads each
    --items history (or TEXT) through its codec; a model of text pairs reads
    each TEXT or line as two texts joined by ' ||| ' or a tab. Each prediction prints as the model
    formats it (LABEL<TAB>PROBABILITY<TAB>TEXT, one word and its tag per line then the
    typed spans, or RANK<TAB>ITEM<TAB>PROBABILITY<TAB>TITLE per line); multi-line ones are
    separated by a blank line.
    """
    from rnnkit.api import load
    from rnnkit.models.contract import Predicting, Stepping, describe, require

    # The input is checked before the run is read; a file that is no text may still be one
    # that the run's codec reads (arrays of numbers), so its complaint waits for the codec.
    problem = ""
    if items and (texts or file is not None):
        _fail("--items: give item ids with --items, or TEXT / --file, not both")
    if items:
        lines = list(items)
    elif file is None:
        lines = _lines(texts, None)
    else:
        lines, problem = _file_lines(file)
    try:
        model = load(run_dir, which)  # a bad run or checkpoint: the top-level handler
    except Exception:
        if problem:
            _fail(problem, 2)
        raise
    hint = "; it continues text: use `rnnkit generate`" if isinstance(model, Stepping) else ""
    require(model, Predicting, str(run_dir), needs="predict(inputs) for raw input" + hint)
    parse = getattr(model.codec, "parse_items", None)  # codecs of item ids read histories
    if items and not callable(parse):
        _fail(f"--items: {run_dir} is {describe(model)}, which reads no item ids; give TEXT")
    for history in items or ():
        try:
            parse(history)  # an unknown item id: one sentence naming it, before predicting
        except ValueError as e:
            _fail(f"--items {history}: {e}")
    reader = getattr(model.codec, "read_inputs", None)  # codecs of arrays read their own files
    if file is not None and callable(reader):
        if not file.is_file():
            _fail(f"--file {file}: no such file")
        try:
            lines = reader(file)  # DataFormatError names the file and line
        except (ValueError, OSError) as e:
            _fail(str(e))
    elif problem:
        _fail(problem, 2)
    if not len(lines):
        _fail("no text or input to predict on (give TEXT, --file or standard input)")
    try:
        results = model.predict(lines)
    except ValueError as e:  # what the model cannot read: name the file it came from
        _fail(f"{file}: {e}" if file is not None else str(e))
    shown = [str(r) for r in results]
    typer.echo(("\n\n" if any("\n" in s for s in shown) else "\n").join(shown))


def _unknown_pieces(codec: object, text: str) -> list[str]:
    """The distinct tokens of ``text`` that ``codec`` reads as ``<unk>`` (text codecs)."""
    tokenizer, vocab = getattr(codec, "tokenizer", None), getattr(codec, "vocab", None)
    tokenize = getattr(tokenizer, "tokenize", None)
    if not callable(tokenize) or vocab is None:
        return []
    try:
        tokens = tokenize(text)
    except (ValueError, TypeError):
        return []
    return list(dict.fromkeys(t for t in tokens if isinstance(t, str) and t not in vocab))


def generate(
    run_dir: Path = typer.Argument(..., help="run directory of a model with a next-token step"),
    prime: str = typer.Option("\n", "--prime", "-p", help="text to start from"),
    length: int = typer.Option(500, "--length", "-n", help="new tokens to generate"),
    temperature: float = typer.Option(1.0, "--temperature", "-t", help="0 for greedy"),
    top_k: int | None = typer.Option(None, "--top-k", help="sample from the k likeliest"),
    top_p: float | None = typer.Option(None, "--top-p", help="nucleus sampling mass"),
    seed: int | None = typer.Option(None, "--seed", help="seed for repeatable samples"),
    which: str = typer.Option("best", help="best or latest checkpoint"),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="also write the sample as files, when the model's codec writes them (music: "
        "song.mid, with song.musicxml and the piano roll song.png beside it)",
    ),
) -> None:
    """Generate text from a model with a next-token step, streaming it as it is drawn.

    With --out, the prime and the sample are also written through the run's codec (a music
    model writes MIDI, MusicXML and a piano-roll PNG); the files are listed on stderr.
    """
    from rnnkit.api import load
    from rnnkit.decoding import check_sampling
    from rnnkit.models.contract import Stepping, Translating, describe, require

    if length < 0:
        _fail(f"--length must be >= 0, got {length}", 2)
    try:
        check_sampling(temperature, top_k, top_p)
    except ValueError as e:
        _fail(f"--{str(e).replace('_', '-')}", 2)
    model = load(run_dir, which)  # a bad run directory or checkpoint: the top-level handler
    require(model, Stepping, str(run_dir))
    if not callable(getattr(model, "generate", None)):  # steps from a source: a decoder
        hint = "; use `rnnkit translate`" if isinstance(model, Translating) else ""
        _fail(f"{run_dir} is {describe(model)}: it continues no text by itself{hint}")
    write = getattr(model.codec, "write_sample", None)
    if out is not None:
        if not callable(write):
            _fail(f"--out: {run_dir} is {describe(model)}, whose samples are text only")
        try:
            model.codec.sample_paths(out)  # refuses a name it cannot write before sampling
        except ValueError as e:
            _fail(f"--out: {e}")
    encode = getattr(model.codec, "encode", None)
    if callable(encode):  # a prime the codec cannot read: one error, before anything prints
        try:
            ids = encode(prime)
        except ValueError as e:
            _fail(f"--prime: {e}")
        text = getattr(model.codec, "kind", "") == "text"  # music codecs start from silence
        if text and hasattr(ids, "__len__") and not len(ids):
            default = " (the default, a line break)" if prime == "\n" else ""
            _fail(
                f"--prime {prime!r}{default}: holds no token of this model's vocabulary "
                "(a word-level model starts from words: give --prime 'The')"
            )
        unknown = _unknown_pieces(model.codec, prime)
        if unknown:
            typer.echo(
                f"note: --prime holds {', '.join(map(repr, unknown[:5]))}, not in the "
                "vocabulary: read as <unk>",
                err=True,
            )
    typer.echo(prime, nl=False)
    sample = model.generate(
        prime,
        length,
        temperature,
        top_k,
        top_p,
        seed,
        on_text=lambda piece: typer.echo(piece, nl=False),
    )
    typer.echo("")
    if out is not None:
        try:
            written = write(prime + sample, out)
        except ValueError as e:
            _fail(f"--out: {e}")
        typer.echo("wrote " + ", ".join(str(p) for p in written), err=True)


def translate(
    run_dir: Path = typer.Argument(..., help="run directory of an encoder-decoder"),
    texts: list[str] = typer.Argument(None, help="texts to translate (default: standard input)"),
    file: Path | None = typer.Option(None, "--file", "-f", help="translate each line of FILE"),
    beam: int = typer.Option(1, "--beam", "-k", help="beam width (1: greedy)"),
    n_best: int = typer.Option(1, "--n-best", "-n", help="outputs per input, best first"),
    length_penalty: float = typer.Option(0.0, "--length-penalty", help="GNMT alpha"),
    max_length: int | None = typer.Option(None, "--max-length", help="most output tokens"),
    no_repeat_ngram: int = typer.Option(
        0, "--no-repeat-ngram", help="n > 0: no n-gram twice in an output"
    ),
    attention_plot: Path | None = typer.Option(
        None, "--attention-plot", help="write each input's attention heatmap as DIR/N.png"
    ),
    which: str = typer.Option("best", help="best or latest checkpoint"),
    ensemble: list[Path] = typer.Option(
        [],
        "--ensemble",
        help="another run of the same task and codec to decode with this one, their "
        "log-probabilities averaged at every step; repeat for more",
    ),
) -> None:
    """Translate each text, line of FILE or line of stdin with an encoder-decoder run.

    Prints one output per line; with --n-best N, N lines per input (RANK<TAB>LOG-PROB<TAB>
    OUTPUT) and a blank line between inputs.
    """
    from rnnkit.api import load, load_ensemble
    from rnnkit.models.contract import Translating, require

    if beam < 1:
        _fail(f"--beam must be >= 1, got {beam}")
    if not 1 <= n_best <= beam:
        _fail(f"--n-best must be between 1 and --beam={beam}, got {n_best}")
    if not length_penalty >= 0:
        _fail(f"--length-penalty must be >= 0, got {length_penalty}")
    if length_penalty and beam == 1:
        _fail("--length-penalty applies to beam search: give --beam 2 or more too")
    if no_repeat_ngram < 0:
        _fail(f"--no-repeat-ngram must be >= 0, got {no_repeat_ngram}")
    if max_length is not None and max_length < 1:
        _fail(f"--max-length must be >= 1, got {max_length}")
    if attention_plot is not None and attention_plot.exists() and not attention_plot.is_dir():
        _fail(f"--attention-plot {attention_plot}: is a file; name a folder")
    lines = _lines(texts, file)
    if not lines:
        _fail("no text to translate (give TEXT, --file or standard input)")
    # a bad run directory or checkpoint: the top-level handler
    model = load_ensemble([run_dir, *ensemble], which) if ensemble else load(run_dir, which)
    require(model, Translating, str(run_dir))
    found = model.translate(
        lines,
        beam=beam,
        n_best=n_best,
        max_length=max_length,
        length_penalty=length_penalty,
        attention=attention_plot is not None,
        no_repeat_ngram=no_repeat_ngram,
    )
    if attention_plot is not None:
        from rnnkit.diagnostics import plot_attention

        attention_plot.mkdir(parents=True, exist_ok=True)
        for i, t in enumerate(found):
            if t.attention is not None:
                plot_attention(
                    t.attention, t.source_tokens, [*t.tokens, "<eos>"], attention_plot / f"{i}.png"
                )
    if n_best == 1:
        typer.echo("\n".join(t.text for t in found))
        return
    blocks = []
    for t in found:
        ranked = [t, *t.alternatives]
        blocks.append("\n".join(f"{r}\t{x.score:.4f}\t{x.text}" for r, x in enumerate(ranked, 1)))
    typer.echo("\n\n".join(blocks))


def register(app: typer.Typer) -> None:
    """Add predict, generate and translate (and `tag`, predict's old name for taggers)."""
    app.command()(predict)
    app.command("tag", hidden=True, help="Alias of predict.")(predict)
    app.command()(generate)
    app.command()(translate)

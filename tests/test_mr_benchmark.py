"""The helpers of benchmarks/mr_sentiment.py at toy sizes (no training, no dataset)."""

from __future__ import annotations

import numpy as np
import pytest

from _benchmarks import load_benchmark


def test_summarise_reads_single_runs_and_ensembles(tmp_path, capsys):
    log = tmp_path / "a.log"
    log.write_text(
        "  gru-learned fold 0: accuracy 70.00 (epoch 3)\n"
        "  gru-learned fold 1: accuracy 72.00 (epoch 4)\n"
        "gru-learned: 71.00 +- 1.00 over 2 folds, 50 s/fold\n"
        "  gru-learned-x2 fold 0: accuracy 75.00 (members 70.00 74.00, epochs 3 4)\n"
    )
    load_benchmark("mr_sentiment").summarise([log])
    out = capsys.readouterr().out
    assert "| gru-learned | 2 | 71.00 | 1.00 | - | 50 |" in out
    assert "| gru-learned-x2 | 1 | 75.00 | - | 72.00 | - |" in out


def test_combine_averages_every_member_of_the_named_runs(tmp_path, capsys):
    y = np.array([1, 0, 1, 0])
    np.save(tmp_path / "labels-fold0.npy", y)
    right = np.array([[0.4, 0.6], [0.6, 0.4], [0.4, 0.6], [0.6, 0.4]])  # all correct, weakly
    wrong = np.array([[0.9, 0.1], [0.6, 0.4], [0.6, 0.4], [0.6, 0.4]])  # first one wrong, strongly
    np.save(tmp_path / "a-fold0.npy", np.stack([right, right]))
    np.save(tmp_path / "b-fold0.npy", np.stack([wrong]))
    mr = load_benchmark("mr_sentiment")
    mr.combine(tmp_path, ["a"])
    assert "ensemble of a: 100.00" in capsys.readouterr().out
    mr.combine(tmp_path, ["a", "b"])  # first: (0.4 + 0.4 + 0.9) / 3 > 0.5 for class 0
    out = capsys.readouterr().out
    assert "fold 0: 3 members, accuracy 75.00" in out and "ensemble of a + b: 75.00" in out
    with pytest.raises(SystemExit, match="no fold has saved probabilities"):
        mr.combine(tmp_path, ["c"])


def test_nb_ratio_by_hand_and_as_the_library_computes_it():
    mr = load_benchmark("mr_sentiment")
    x = np.array([[1, 1, 0], [1, 0, 1], [0, 1, 1]])  # binarized counts (N=3, V=3)
    y = np.array([1, 1, 0])
    # p = 1 + (2, 1, 1) = (3, 2, 2), |p| = 7; q = 1 + (0, 1, 1) = (1, 2, 2), |q| = 5
    want = np.log([(3 / 7) / (1 / 5), (2 / 7) / (2 / 5), (2 / 7) / (2 / 5)])
    np.testing.assert_allclose(mr.nb_ratio(x, y), want)
    from scipy.sparse import csr_matrix

    np.testing.assert_allclose(mr.nb_ratio(csr_matrix(x), y), want)  # sparse as dense
    # the same ratio as rnnkit.data.nb_log_count_ratios on the token ids of those sentences
    import torch

    from rnnkit.data import nb_log_count_ratios

    ids = torch.tensor([[0, 1, 0], [0, 2, 2], [1, 2, 2]])  # repeats count once
    lib = nb_log_count_ratios(ids, torch.tensor(y), 3)
    np.testing.assert_allclose(lib.numpy(), want, rtol=1e-5)


def _toy():
    good = ["good film", "a good story", "not bad at all", "good acting", "fine and good"]
    bad = ["bad film", "a bad story", "not good at all", "bad acting", "dull and bad"]
    texts = [t for pair in zip(good, bad, strict=True) for t in pair]
    ys = np.array([1, 0] * 5)
    return texts, ys


@pytest.mark.parametrize("kind", ["tfidf-lr", "nb-lr"])
def test_linear_baseline_picks_c_without_reading_the_test_fold(kind):
    mr = load_benchmark("mr_sentiment")
    texts, ys = _toy()
    fit, val, test = np.arange(6), np.array([6, 7]), np.array([8, 9])
    first = mr.linear_baseline(kind, texts, ys, fit, val, test, str.split, grid=(0.01, 1.0, 100.0))
    flipped = ys.copy()
    flipped[test] = 1 - flipped[test]  # other test labels: the same C and validation
    second = mr.linear_baseline(kind, texts, flipped, fit, val, test, str.split, (0.01, 1.0, 100.0))
    assert (first["c"], first["val"]) == (second["c"], second["val"])
    assert first["val"] == 100.0 and first["test"] == 100.0  # "good story"/"bad story" learned
    assert second["test"] == 0.0
    with pytest.raises(ValueError, match="kind must be"):
        mr.linear_fit("svm", texts, ys, 1.0, str.split)


def test_nb_lr_fits_the_toy_set_and_reads_unseen_texts_by_word_polarity():
    """With a large C the NB-LR fit separates the training texts; new texts made of one
    polarity's words (unseen bigrams such as "good good") take that polarity."""
    mr = load_benchmark("mr_sentiment")
    texts, ys = _toy()
    predict = mr.linear_fit("nb-lr", texts, ys, 100.0, str.split)
    assert predict(["good good good", "bad bad", "good", "bad"]).tolist() == [1, 0, 1, 0]
    assert (predict(texts) == ys).all()


def test_fit_val_split_holds_out_a_fixed_tenth():
    import torch

    mr = load_benchmark("mr_sentiment")
    train = torch.arange(100, 200)
    fit, val = mr.fit_val_split(train)
    assert len(val) == 10 and len(fit) == 90
    assert sorted(torch.cat([fit, val]).tolist()) == train.tolist()
    fit2, val2 = mr.fit_val_split(train)
    assert torch.equal(val, val2) and torch.equal(fit, fit2)


def test_validation_only_never_scores_the_test_fold():
    mr = load_benchmark("mr_sentiment")
    best = mr.BestEpoch(None, n_val=10, verbose=False)
    best.on_epoch_end(None, 0, {"val_accuracy": 0.6})  # no trainer needed: no test to score
    best.on_epoch_end(None, 1, {"val_accuracy": 0.8})
    best.on_epoch_end(None, 2, {"val_accuracy": 0.7})
    assert (best.epoch, best.best_correct) == (2, 8) and best.probs.numel() == 0


def test_summarise_reads_the_baselines_lines(tmp_path, capsys):
    log = tmp_path / "baselines.log"
    log.write_text(
        "  nb-lr fold 0: accuracy 78.00 (C 0.3, validation 79.00, fit split only 77.00)\n"
        "  nb-lr fold 1: accuracy 80.00 (C 1, validation 80.00, fit split only 78.00)\n"
        "nb-lr: 79.00 +- 1.00 over 2 folds, 40 s/fold\n"
    )
    load_benchmark("mr_sentiment").summarise([log])
    out = capsys.readouterr().out
    assert "| nb-lr | 2 | 79.00 | 1.00 | - | 40 |" in out
    assert "nb-lr: fit split only (before the refit) 77.50 over 2 folds" in out


def test_refit_trains_on_fit_and_validation_for_the_chosen_epochs():
    """--refit: the fold's result comes from a second model trained on the whole training
    part (fit + validation) for the best validation epoch's count, scored on the test fold."""
    import argparse

    import torch

    mr = load_benchmark("mr_sentiment")
    rng = np.random.default_rng(0)
    words = {1: ["good", "fine", "great"], 0: ["bad", "dull", "poor"]}
    ys = [int(k % 2) for k in range(120)]
    texts = [" ".join(rng.choice(words[y], 3)) + " film" for y in ys]
    args = argparse.Namespace(
        pooling=None, split_clitics=False, onehot_vocab=50, dim=8, nb_dims=0, nb_scale=1.0,
        hidden=8, dropout=0.0, wide=0, wide_nb=False, wide_nb_start=False, freeze=False,
        validation_only=False, verbose=False, epochs=3, batch_size=16, lr=0.02, refit=True,
    )  # fmt: skip
    test_idx, train_idx = torch.arange(100, 120), torch.arange(100)
    best = mr.run_fold("gru-learned", texts, ys, test_idx, train_idx, args, [], 0)
    assert 1 <= best.epoch <= 3 and best.probs.shape == best.refit_probs.shape == (20, 2)
    assert not torch.equal(best.probs, best.refit_probs)  # another model
    y_test = torch.tensor(ys)[test_idx]
    assert float((best.refit_probs.argmax(-1) == y_test).float().mean()) == 1.0
    args.validation_only = True  # tuning never trains the refit
    best = mr.run_fold("gru-learned", texts, ys, test_idx, train_idx, args, [], 0)
    assert best.refit_probs.numel() == 0 and best.probs.numel() == 0

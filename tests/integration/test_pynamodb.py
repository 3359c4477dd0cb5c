"""PynamoDB, an ORM over botocore, works unchanged against triplica."""
from __future__ import annotations

import time
from typing import Any

import pytest

import pynamodb.models as pynamodb_models
from pynamodb.attributes import (ListAttribute, NumberAttribute, UnicodeAttribute,
                                 UnicodeSetAttribute)
from pynamodb.exceptions import PutError

from tests.integration.server import ServerProcess


def meta_for(server: ServerProcess, table: str) -> type:
    """A model's Meta: the table on this server, on demand."""
    return type("Meta", (), {"table_name": table, "host": server.endpoint, "region": "us-east-1",
                             "aws_access_key_id": "AKIDTEST", "aws_secret_access_key": "secret",
                             "billing_mode": "PAY_PER_REQUEST"})


def model_for(server: ServerProcess) -> Any:
    class Song(pynamodb_models.Model):
        Meta = meta_for(server, "pynamodb-songs")

        artist = UnicodeAttribute(hash_key=True)
        title = UnicodeAttribute(range_key=True)
        year = NumberAttribute(null=True)
        tags = UnicodeSetAttribute(null=True)
        plays = ListAttribute(of=NumberAttribute, null=True)

    return Song


def test_pynamodb_model_lifecycle(server: ServerProcess) -> None:
    Song = model_for(server)
    if not Song.exists():
        Song.create_table(wait=True)
    Song("Acme", "Alpha", year=1999, tags={"rock", "live"}).save()
    Song("Acme", "Beta", year=2004).save()
    Song("Other", "Gamma", year=2010).save()
    song = Song.get("Acme", "Alpha")
    assert song.year == 1999 and song.tags == {"rock", "live"}
    song.update(actions=[Song.year.add(1), Song.plays.set([1, 2])])
    assert Song.get("Acme", "Alpha").year == 2000
    assert [s.title for s in Song.query("Acme")] == ["Alpha", "Beta"]
    assert [s.title for s in Song.query("Acme", Song.title.startswith("B"))] == ["Beta"]
    assert [s.title for s in Song.query("Acme", filter_condition=Song.year > 2001)] == ["Beta"]
    assert sorted(s.title for s in Song.scan()) == ["Alpha", "Beta", "Gamma"]
    assert Song.count("Acme") == 2
    with pytest.raises(PutError):
        Song("Acme", "Alpha").save(condition=Song.artist.does_not_exist())
    Song.get("Other", "Gamma").delete()
    assert sorted(s.title for s in Song.scan()) == ["Alpha", "Beta"]
    with Song.batch_write() as batch:
        for i in range(30):
            batch.save(Song("Batch", f"t{i:02d}"))
    assert len(list(Song.batch_get([("Batch", f"t{i:02d}") for i in range(30)]))) == 30


def indexed_models_for(server: ServerProcess) -> Any:
    from pynamodb.indexes import (AllProjection, GlobalSecondaryIndex, IncludeProjection,
                                  KeysOnlyProjection, LocalSecondaryIndex)

    class ByYear(LocalSecondaryIndex):
        class Meta:
            index_name = "by-year"
            projection = IncludeProjection(["rating"])

        artist = UnicodeAttribute(hash_key=True)
        year = NumberAttribute(range_key=True)

    class ByRating(LocalSecondaryIndex):
        class Meta:
            index_name = "by-rating"
            projection = KeysOnlyProjection()

        artist = UnicodeAttribute(hash_key=True)
        rating = NumberAttribute(range_key=True)

    class ByLabel(GlobalSecondaryIndex):
        class Meta:
            index_name = "by-label"
            projection = AllProjection()

        label = UnicodeAttribute(hash_key=True)

    class Album(pynamodb_models.Model):
        Meta = meta_for(server, "pynamodb-albums")

        artist = UnicodeAttribute(hash_key=True)
        title = UnicodeAttribute(range_key=True)
        year = NumberAttribute(null=True)
        rating = NumberAttribute(null=True)
        label = UnicodeAttribute(null=True)
        notes = UnicodeAttribute(null=True)
        by_year = ByYear()
        by_rating = ByRating()
        by_label = ByLabel()

    return Album


def test_pynamodb_models_with_local_and_global_indexes(server: ServerProcess) -> None:
    Album = indexed_models_for(server)
    if not Album.exists():
        Album.create_table(wait=True)
    description = Album.describe_table()
    assert {i["IndexName"] for i in description["LocalSecondaryIndexes"]} == {"by-year", "by-rating"}
    assert [i["IndexName"] for i in description["GlobalSecondaryIndexes"]] == ["by-label"]
    Album("Acme", "First", year=1999, rating=3, notes="debut").save()
    Album("Acme", "Second", year=1995, rating=5, label="L").save()
    Album("Acme", "Third", year=2004).save()
    Album("Acme", "Loose").save()
    Album("Other", "Only", year=1990, rating=1).save()
    by_year = list(Album.by_year.query("Acme"))
    assert [a.title for a in by_year] == ["Second", "First", "Third"]
    assert by_year[1].rating == 3 and by_year[1].notes is None       # INCLUDE rating only
    assert [a.title for a in Album.by_year.query("Acme", Album.year > 1996)] == ["First", "Third"]
    assert [a.title for a in Album.by_year.query("Acme", scan_index_forward=False, limit=1)] == \
        ["Third"]
    assert [a.title for a in Album.by_rating.query("Acme")] == ["First", "Second"]
    assert Album.by_rating.count("Acme") == 2
    assert [a.title for a in Album.by_year.query(
        "Acme", filter_condition=Album.rating >= 4)] == ["Second"]
    assert sorted(a.title for a in Album.by_year.scan()) == ["First", "Only", "Second", "Third"]
    Album.get("Acme", "Second").update(actions=[Album.year.set(2010)])
    assert [a.title for a in Album.by_year.query("Acme", consistent_read=True)] == \
        ["First", "Third", "Second"]
    Album.get("Acme", "First").delete()
    assert [a.title for a in Album.by_year.query("Acme", consistent_read=True)] == \
        ["Third", "Second"]
    # The global index is eventually consistent: its entry arrives by propagation.
    Album("Indie", "Fourth", label="L", year=2001).save()
    deadline = time.monotonic() + 10.0
    while sorted(a.title for a in Album.by_label.query("L")) != ["Fourth", "Second"]:
        assert time.monotonic() < deadline, [a.title for a in Album.by_label.query("L")]
        time.sleep(0.1)
    assert Album.by_label.count("L") == 2 and Album.by_label.count("nobody") == 0

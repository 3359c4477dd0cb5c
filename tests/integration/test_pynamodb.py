"""PynamoDB, an ORM over botocore, works unchanged against triplica."""
from __future__ import annotations

from typing import Any

import pytest

import pynamodb.models as pynamodb_models
from pynamodb.attributes import (ListAttribute, NumberAttribute, UnicodeAttribute,
                                 UnicodeSetAttribute)
from pynamodb.exceptions import PutError

from tests.integration.server import ServerProcess


def model_for(server: ServerProcess) -> Any:
    class Song(pynamodb_models.Model):
        class Meta:
            table_name = "pynamodb-songs"
            host = server.endpoint
            region = "us-east-1"
            aws_access_key_id = "AKIDTEST"
            aws_secret_access_key = "secret"
            billing_mode = "PAY_PER_REQUEST"

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

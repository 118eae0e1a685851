from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from encoders.entity_descriptions import describe_entities, readable_relation
from encoders.features import (
    FeatureFileError,
    build_node_features,
    item_texts,
    load_features,
    resolve_image,
    save_features,
    user_profile_texts,
)
from encoders.text import TextEncoder
from kg.model.graph import KnowledgeGraph

FB = "http://rdf.freebase.com/ns/"


@pytest.fixture(scope="module")
def text_encoder(tiny_bert: Path) -> TextEncoder:
    return TextEncoder(str(tiny_bert), show_progress=False)


def test_readable_relation() -> None:
    assert readable_relation("film.film.directed_by") == "directed by"
    assert readable_relation("ageGroup") == "age group"
    assert readable_relation("http://schema.org/genre") == "genre"
    assert readable_relation("people.person.place_of_birth") == "place of birth"


def test_item_and_user_texts(small_kg_dir: Path) -> None:
    kg = KnowledgeGraph.load(small_kg_dir)
    lm, clip = item_texts(kg)
    assert lm == [
        "Toy Story. Animation, Comedy. Toys come alive.",
        "A Bug's Life. Animation",
        "Heat. Crime. A thief and a detective.",
    ]
    assert clip == ["Toy Story. Animation, Comedy", "A Bug's Life. Animation", "Heat. Crime"]
    assert user_profile_texts(kg) == [
        "age 25-34, gender male, occupation technician",
        "gender female, occupation writer",
        "",
    ]


def test_entity_descriptions(small_kg_dir: Path) -> None:
    kg = KnowledgeGraph.load(small_kg_dir)
    texts = describe_entities(kg)
    by_id = dict(zip(kg.ids("entity"), texts, strict=True))
    assert by_id[f"{FB}m.0lasseter"] == "directed by of: Toy Story; A Bug's Life"
    assert by_id[f"{FB}m.0isolated"] == ""
    assert by_id["http://example.org/genre/Animation"] == "Animation"
    assert (
        dict(zip(kg.ids("entity"), describe_entities(kg, max_neighbours=1), strict=True))[f"{FB}m.0lasseter"]
        == "directed by of: Toy Story"
    )


def test_entity_description_mixes_directions_and_unnamed() -> None:
    kg = KnowledgeGraph()
    kg.add_text("item", "heat", "name", "Heat")
    kg.add_triple("item", "heat", "film.film.directed_by", "entity", f"{FB}m.mann")
    kg.add_triple("entity", f"{FB}m.mann", "people.person.nationality", "entity", f"{FB}m.us")
    kg.add_text("entity", f"{FB}m.us", "label", "United States")
    kg.add_triple("entity", f"{FB}m.mann", "people.person.spouse_s", "entity", f"{FB}m.spouse")
    kg.add_triple("entity", f"{FB}m.other", "award.award_winner", "entity", f"{FB}m.mann")
    kg.add_text("entity", f"{FB}m.desc", "description", "A described thing")
    texts = dict(zip(kg.ids("entity"), describe_entities(kg), strict=True))
    assert texts[f"{FB}m.mann"] == (
        "directed by of: Heat. nationality: United States. "
        "award winner of: 1 unnamed entity. spouse s: 1 unnamed entity"
    )
    assert texts[f"{FB}m.spouse"] == "spouse s of: 1 unnamed entity"
    assert texts[f"{FB}m.desc"] == "A described thing"


def test_resolve_image(tmp_path: Path) -> None:
    assert resolve_image("file:///a%20b/c.jpg", tmp_path) == Path("/a b/c.jpg")
    assert resolve_image("posters/1.jpg", tmp_path) == tmp_path / "posters/1.jpg"
    assert resolve_image("/abs/1.jpg", tmp_path) == Path("/abs/1.jpg")
    assert resolve_image("https://example.org/1.jpg", tmp_path) is None


def test_build_features_with_masks(
    small_kg_dir: Path, text_encoder: TextEncoder, fake_clip_image, fake_clip_text
) -> None:
    kg = KnowledgeGraph.load(small_kg_dir)
    feats = build_node_features(kg, small_kg_dir, text_encoder, fake_clip_image, fake_clip_text)
    assert sorted(feats) == sorted(
        f"{k}{m}"
        for k in ("item.text", "item.image", "item.clip_text", "entity.text", "user.profile_text")
        for m in ("", "_mask")
    )
    assert feats["item.text"].shape == (3, 32) and feats["item.text_mask"].tolist() == [True] * 3
    lm, _ = item_texts(kg)
    torch.testing.assert_close(feats["item.text"], text_encoder(lm))
    # item 1 has a poster, item 2's file is missing, item 3 has none
    assert feats["item.image_mask"].tolist() == [True, False, False]
    assert len(fake_clip_image.calls) == 1 and fake_clip_image.calls[0][0].endswith("1.png")
    assert feats["item.image"].shape == (3, 4) and torch.all(feats["item.image"][1:] == 0)
    assert feats["item.image"][0, 3] == 1.0
    assert feats.stats["item.image"]["with_image"] == 2 and feats.stats["item.image"]["failed"] == 1
    assert fake_clip_text.calls == [["Toy Story. Animation, Comedy", "A Bug's Life. Animation", "Heat. Crime"]]
    assert feats["item.clip_text"][2].tolist() == [11.0, 2.0] and feats["item.clip_text_mask"].all()
    iso = kg.index_of("entity", f"{FB}m.0isolated")
    assert feats["entity.text_mask"].sum() == kg.num_nodes("entity") - 1 and not feats["entity.text_mask"][iso]
    assert feats["user.profile_text_mask"].tolist() == [True, True, False]
    assert torch.all(feats["user.profile_text"][2] == 0)
    assert feats.identities["item.text"] == text_encoder.identity
    assert feats.identities["item.image"] == "fake-clip-image"


def test_without_clip_only_text_keys(small_kg_dir: Path, text_encoder: TextEncoder) -> None:
    feats = build_node_features(KnowledgeGraph.load(small_kg_dir), small_kg_dir, text_encoder)
    assert not any(k.startswith(("item.image", "item.clip_text")) for k in feats)


def test_save_and_load_round_trip(small_kg_dir: Path, text_encoder: TextEncoder, fake_clip_image) -> None:
    kg = KnowledgeGraph.load(small_kg_dir)
    feats = build_node_features(kg, small_kg_dir, text_encoder, fake_clip_image)
    out = save_features(small_kg_dir / "features", feats, feats.identities)
    meta = json.loads((out.parent / "features.json").read_text())
    assert meta["dims"]["item.text"] == 32 and meta["dims"]["item.image"] == 4
    assert meta["counts"]["entity.text"] == kg.num_nodes("entity") and meta["present"]["item.image_mask"] == 1
    assert meta["identities"]["item.text"] == text_encoder.identity
    assert sorted(p.name for p in out.parent.iterdir()) == ["features.json", "features.safetensors"]
    loaded = load_features(out.parent, kg)
    assert sorted(loaded) == sorted(feats) and loaded.identities == meta["identities"]
    for key, value in feats.items():
        assert torch.equal(loaded[key], value) and loaded[key].dtype == value.dtype
    # a KG with other counts, or a damaged tensor file, is refused
    kg.add_node("item", "extra")
    with pytest.raises(FeatureFileError, match=r"item\.[a-z_]+ has 3 rows, the KG has 4 items"):
        load_features(out.parent, kg)
    out.write_bytes(out.read_bytes()[:-8])
    with pytest.raises(FeatureFileError, match="checksum"):
        load_features(out.parent)
    with pytest.raises(FeatureFileError, match="no readable"):
        load_features(small_kg_dir / "nowhere")


def test_unnamed_entity_with_a_readable_id_is_named_by_it() -> None:
    from encoders.entity_descriptions import id_name

    kg = KnowledgeGraph()
    kg.add_triple("item", "heat", "film.film.directed_by", "entity", "http://example.org/person/Michael_Mann")
    kg.add_triple("item", "heat", "film.film.genre", "entity", f"{FB}m.crime")
    kg.add_text("item", "heat", "name", "Heat")
    kg.add_text("entity", "http://example.org/genre/Film_Noir", "label", "Noir (label wins)")
    texts = dict(zip(kg.ids("entity"), describe_entities(kg), strict=True))
    assert texts["http://example.org/person/Michael_Mann"] == "Michael Mann"  # the id reads as a name
    assert texts[f"{FB}m.crime"] == "genre of: Heat"  # an opaque id: its neighbourhood instead
    assert texts["http://example.org/genre/Film_Noir"] == "Noir (label wins)"
    assert id_name("http://example.org/genre/Film%20Noir") == "Film Noir"
    assert id_name("ex:Blade_Runner") == "Blade Runner"
    for opaque in (f"{FB}m.0abc12", f"{FB}g.11bc7", "http://www.wikidata.org/entity/Q42", "http://x.org/item/1682",
                   "urn:uuid:123e4567-e89b-12d3-a456-426614174000"):
        assert id_name(opaque) is None, opaque

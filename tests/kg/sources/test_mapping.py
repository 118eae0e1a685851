from pathlib import Path

import pytest

from kg.errors import MappingError
from kg.sources.mapping import MMKG, SCHEMA, Mapping, load_mapping

FIXTURES = Path(__file__).parent.parent / "fixtures"
SHOP = "http://shop.example.org/vocab#"


def test_defaults_follow_the_schema_org_contract():
    m = load_mapping(None)
    assert m.user_classes == [MMKG + "User"]
    assert SCHEMA + "Movie" in m.item_classes and MMKG + "Item" in m.item_classes
    assert (m.interaction_class, m.interaction_user, m.interaction_item) == (
        SCHEMA + "Review", SCHEMA + "author", SCHEMA + "itemReviewed")
    assert m.interaction_rating == SCHEMA + "reviewRating" and m.interaction_timestamp == SCHEMA + "dateCreated"
    assert m.direct_interactions == [MMKG + "interactedWith"]
    assert m.text_predicates["http://www.w3.org/2000/01/rdf-schema#label"] == "label"
    assert m.text_predicates["http://purl.org/dc/terms/title"] == "title"
    assert m.image_predicates == [SCHEMA + "image", "http://xmlns.com/foaf/0.1/depiction"]
    assert m.drop_predicates == []
    assert (m.neo4j_user_label, m.neo4j_item_label) == ("User", "Item")
    assert m.neo4j_interaction_types == ["RATED", "INTERACTED"]
    assert (m.neo4j_rating_property, m.neo4j_timestamp_property, m.neo4j_id_property) == ("rating", "timestamp", "id")


def test_file_expands_curies_replaces_and_extends():
    m = Mapping.load(FIXTURES / "shop_mapping.toml")
    assert m.user_classes == [SHOP + "Customer"]  # replaced
    assert m.item_classes == Mapping().item_classes + [SHOP + "Gadget"]  # extended
    assert (m.interaction_class, m.interaction_user, m.interaction_item) == (SHOP + "Order", SHOP + "buyer",
                                                                             SHOP + "product")
    assert m.interaction_timestamp == SHOP + "when"
    assert m.drop_predicates == [SHOP + "internalCode"]
    # [text_predicates] replaces the default table, [extra_text_predicates] adds to it; <IRI> is accepted
    assert m.text_predicates == {SHOP + "title": "name", SHOP + "blurb": "description", SHOP + "nickname": "label"}
    assert m.prefixes["shop"] == SHOP and m.prefixes["schema"] == SCHEMA  # built-ins kept
    assert m.neo4j_user_label == "Customer" and m.neo4j_item_label == "Item"  # neo4j keys carried as is


def test_extra_key_order_does_not_matter():
    m = Mapping.from_dict({"extra_user_classes": ["schema:Person"], "user_classes": ["mmkg:Member"]})
    assert m.user_classes == [MMKG + "Member", SCHEMA + "Person"]


def test_typo_names_key_file_and_closest_valid_key():
    with pytest.raises(MappingError) as e:
        Mapping.load(FIXTURES / "mapping_typo.toml")
    msg = str(e.value)
    assert "mapping_typo.toml" in msg and "'item_clases'" in msg and "'item_classes'" in msg


def test_bad_toml_names_file_and_line():
    with pytest.raises(MappingError, match=r"mapping_bad_toml\.toml:2: invalid TOML"):
        Mapping.load(FIXTURES / "mapping_bad_toml.toml")


def test_keys_swallowed_by_a_prefixes_table_are_explained(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text('[prefixes]\nex = "http://example.org/"\nuser_classes = ["ex:U"]\n')
    with pytest.raises(MappingError, match=r"m\.toml: key 'user_classes' is inside the \[prefixes\] table"):
        Mapping.load(path)


@pytest.mark.parametrize("raw, pattern", [
    ({"user_classes": ["nope:User"]}, r"user_classes: 'nope:User' is neither an IRI nor a CURIE"),
    ({"user_classes": "schema:User"}, r"'user_classes' must be a list of strings"),
    ({"interaction_class": ["schema:Review"]}, r"'interaction_class' must be a string"),
    ({"extra_neo4j_user_label": "X"}, r"unknown mapping key 'extra_neo4j_user_label'"),
])
def test_invalid_values(raw, pattern):
    with pytest.raises(MappingError, match=pattern):
        Mapping.from_dict(raw, source="m.toml")


def test_missing_file():
    with pytest.raises(MappingError, match=r"nowhere\.toml: cannot read mapping file"):
        Mapping.load(FIXTURES / "nowhere.toml")

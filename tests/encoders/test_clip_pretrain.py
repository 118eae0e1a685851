"""CLIP pre-training on synthetic colour pairs, the pairs of a KG / ml-1m folder, the
split by film and the retrieval metric; no network, tiny models."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import torch
from PIL import Image

from encoders.__main__ import main as encoders_main
from encoders.clip import load_clip
from encoders.clip_pairs import catalog_pairs, ml1m_records, normalise_title, retrieval_recall, split_by_group
from encoders.clip_pretrain import ClipPretrainConfig, drop_tokens, pretrain_clip
from kg.errors import MMKGError
from kg.model.graph import KnowledgeGraph

COLOURS = {
    "red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30),
    "black": (10, 10, 10), "white": (245, 245, 245), "purple": (140, 30, 160), "orange": (250, 140, 20),
    "cyan": (30, 220, 220), "pink": (250, 150, 200), "brown": (120, 70, 20), "grey": (128, 128, 128),
}


def colour_pairs(directory: Path) -> list[tuple[str, str, str]]:
    """24 pairs: two shades of each of 12 colours (one group per colour), text "a <colour> poster"."""
    directory.mkdir(parents=True, exist_ok=True)
    pairs = []
    for name, rgb in COLOURS.items():
        for shade in (0, 1):
            path = directory / f"{name}-{shade}.png"
            Image.new("RGB", (48, 40), tuple(max(0, c - 25 * shade) for c in rgb)).save(path)
            pairs.append((name, str(path), f"a {name} poster"))
    return pairs


def test_pretraining_reduces_the_loss_and_the_checkpoint_round_trips(tmp_path: Path) -> None:
    pairs = colour_pairs(tmp_path / "img")
    config = ClipPretrainConfig(config="tiny", epochs=2, batch_size=8, lr=5e-3, heldout_frac=0.25, show_progress=False)
    out = tmp_path / "clip" / "catalog_clip.pt"
    result = pretrain_clip(pairs, config, out)
    assert result["mode"] == "scratch" and result["epochs"] == 2 and len(result["history"]) == 2
    assert (result["train_groups"], result["heldout_groups"], result["train_pairs"]) == (9, 3, 18)
    assert result["loss_after"] < result["loss_before"]
    assert result["chance"] == {"R@1": 1 / 3, "R@5": 1.0, "R@10": 1.0}
    assert set(result["image_to_text"]) == {"R@1", "R@5", "R@10"}
    assert not list(out.parent.glob(".*tmp"))  # the temporary file was renamed
    bundle = load_clip(str(out), None, device="cpu")
    saved = torch.load(out, weights_only=True)
    assert saved["meta"]["metrics"]["loss_after"] == result["loss_after"]
    assert all(torch.equal(v, saved["state_dict"][k]) for k, v in bundle.model.state_dict().items())
    # fine-tuning starts from those weights, at a tenth of the preset learning rate
    config = ClipPretrainConfig(config="tiny", checkpoint=str(out), epochs=1, batch_size=8, heldout_frac=0.25,
                                show_progress=False)
    tuned = pretrain_clip(pairs, config, tmp_path / "tuned.pt")
    assert tuned["mode"] == "fine-tune" and tuned["lr"] == pytest.approx(5e-4)
    assert tuned["loss_before"] == pytest.approx(result["loss_after"], abs=1e-4)


def test_unreadable_images_are_dropped_not_fatal(tmp_path: Path) -> None:
    pairs = colour_pairs(tmp_path / "img")[:8]
    pairs += [("ghost", str(tmp_path / "missing.jpg"), "a ghost"), ("junk", str(tmp_path / "x.jpg"), "junk")]
    (tmp_path / "x.jpg").write_text("not an image")
    config = ClipPretrainConfig(config="tiny", epochs=1, batch_size=4, heldout_frac=0.2, show_progress=False)
    result = pretrain_clip(pairs, config, tmp_path / "c.pt")
    assert result["unreadable_images"] == 2 and result["train_pairs"] + result["heldout_groups"] <= 8


def test_split_by_group_never_straddles() -> None:
    rng = random.Random(1)
    pairs = [(f"film{rng.randrange(40)}", f"{i}.jpg", "t") for i in range(300)]
    for seed in range(5):
        for frac in (0.05, 0.1, 0.5):
            train, held = split_by_group(pairs, frac, seed)
            assert sorted(train + held) == list(range(300))
            assert not {pairs[i][0] for i in train} & {pairs[i][0] for i in held}
            assert len({pairs[i][0] for i in held}) == max(1, round(40 * frac))
    assert split_by_group(pairs, 0.1, 3) == split_by_group(pairs, 0.1, 3)
    assert split_by_group(pairs[:1], 0.5) == ([0], [])


def test_retrieval_recall_by_hand() -> None:
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    txt = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    # image->text scores: row 0 [1, .8, 0] rank 0; row 1 [0, .6, 1] rank 1; row 2 [.6, .96, .8] rank 1
    r = retrieval_recall(img, txt, ks=(1, 2))
    assert r["image_to_text"] == {"R@1": pytest.approx(1 / 3), "R@2": 1.0}
    # text->image: text 0 [1, 0, .6] rank 0; text 1 [.8, .6, .96] rank 2; text 2 [0, 1, .8] rank 1
    assert r["text_to_image"] == {"R@1": pytest.approx(1 / 3), "R@2": pytest.approx(2 / 3)}
    assert r["chance"] == {"R@1": pytest.approx(1 / 3), "R@2": pytest.approx(2 / 3)}
    # p-values at K=2 (p = 2/3, n = 3): image->text 3 hits: (2/3)^3; text->image 2 hits: + 3 (2/3)^2 (1/3)
    assert r["p_value"]["image_to_text"] == pytest.approx(8 / 27)
    assert r["p_value"]["text_to_image"] == pytest.approx(8 / 27 + 12 / 27)


def test_binomial_tail_by_hand() -> None:
    from encoders.clip_pairs import binomial_tail

    assert binomial_tail(4, 0, 0.5) == 1.0
    assert binomial_tail(4, 3, 0.5) == pytest.approx(5 / 16)  # (4 + 1) / 2^4
    assert binomial_tail(382, 21, 10 / 382) < 2e-3  # 21 of 382 films in the top 10 (chance: ~10); 1.35e-3
    assert binomial_tail(382, 10, 10 / 382) > 0.4
    assert binomial_tail(382, 21, 10 / 382) == pytest.approx(sum(
        math.comb(382, x) * (10 / 382) ** x * (1 - 10 / 382) ** (382 - x) for x in range(21, 383)))
    # large held-out sets (C(n, x) overflows a float): expected hits 10, so 10 hits ~ 0.54 and 40 far above
    assert 0.4 < binomial_tail(5000, 10, 10 / 5000) < 0.6 and binomial_tail(5000, 40, 10 / 5000) < 1e-10


def test_titles_normalise_across_datasets() -> None:
    assert normalise_title("American President, The") == normalise_title("The American President") == (
        "the american president"
    )
    assert normalise_title("Shanghai Triad (Yao a yao yao dao waipo qiao)") == "shanghai triad"
    assert normalise_title("Ulee's Gold") == "ulee s gold"
    assert normalise_title("Amélie (Le Fabuleux destin)") == normalise_title("Amelie") == "amelie"


def write_ml1m(directory: Path, lines: list[str], posters: list[str]) -> Path:
    (directory / "posters").mkdir(parents=True)
    (directory / "movies.dat").write_bytes("\n".join(lines).encode("latin-1"))
    for pid in posters:
        Image.new("RGB", (20, 30), (9, 9, 9)).save(directory / "posters" / f"{pid}.jpg")
    return directory


def test_catalog_pairs_from_a_kg_and_ml1m(small_kg_dir: Path, tmp_path: Path) -> None:
    ml1m = write_ml1m(tmp_path / "ml-1m", ["1::Toy Story (1995)::Animation|Children's|Comedy",
                                          "7::Amélie (Le Fabuleux destin)(2001)::Comedy", "8::No Poster (1990)::Drama"],
                      ["1", "7"])
    pairs = catalog_pairs(small_kg_dir, ml1m)
    kg_images, posters = small_kg_dir.parent / "images", ml1m / "posters"
    # the KG keeps no release year, so every key is the title alone
    assert pairs == [
        ("toy story", str(kg_images / "1.png"), "Toy Story. Animation, Comedy. Toys come alive."),
        ("a bug s life", str(kg_images / "missing.png"), "A Bug's Life. Animation"),
        ("toy story", str(posters / "1.jpg"), "Toy Story (1995). Animation, Children's, Comedy"),
        ("amelie", str(posters / "7.jpg"), "Amélie (Le Fabuleux destin) (2001). Comedy"),
    ]
    assert catalog_pairs(KnowledgeGraph.load(str(small_kg_dir)))[0][0] == "toy story"
    assert ml1m_records(ml1m)[0][:2] == ("Toy Story", "1995")
    bad = write_ml1m(tmp_path / "bad", ["1::Toy Story (1995)::Animation", "2::broken"], [])
    with pytest.raises(MMKGError, match=r"movies.dat:2"):
        ml1m_records(bad)


def test_config_rejects_unknown_keys() -> None:
    with pytest.raises(MMKGError, match="'epoch'"):
        ClipPretrainConfig.from_dict({"epoch": 3})
    assert ClipPretrainConfig.from_dict({"epochs": 3}).epochs == 3


def test_cli_pretrains_a_kg(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    kg = KnowledgeGraph()
    for name, path, _ in colour_pairs(tmp_path / "img"):
        item = f"http://example.org/item/{Path(path).stem}"
        kg.add_text("item", item, "name", f"{name} film")
        kg.add_triple("item", item, "genre", "entity", f"http://example.org/genre/{name}")
        kg.add_text("entity", f"http://example.org/genre/{name}", "label", name)
        kg.set_image("item", item, Path(path).as_uri())
    kg.save(str(tmp_path / "kg"))
    argv = ["pretrain-clip", "--kg", str(tmp_path / "kg"), "--config", "tiny", "--epochs", "1", "--quiet",
            "--no-extra-posters", "--threads", "1"]
    assert encoders_main(argv) == 0
    out = capsys.readouterr().out
    assert "CLIP scratch (tiny)" in out and "image_to_text" in out and "chance" in out
    assert (tmp_path / "kg" / "clip" / "catalog_clip.pt").is_file()
    assert encoders_main(["pretrain-clip", "--kg", str(tmp_path / "nowhere")]) == 2
    assert "error: KG directory" in capsys.readouterr().err


def test_token_dropout_keeps_start_end_and_padding() -> None:
    tokens = torch.tensor([[49406, 320, 736, 49407, 0, 0], [49406, 321, 49407, 0, 0, 0]])
    assert torch.equal(drop_tokens(tokens, 0.0), tokens)
    assert drop_tokens(tokens, 1.0).tolist() == [[49406, 0, 0, 49407, 0, 0], [49406, 0, 49407, 0, 0, 0]]
    dropped = drop_tokens(tokens.repeat(500, 1), 0.25, torch.Generator().manual_seed(0))
    assert 0.2 < float((dropped[0::2, 1:3] == 0).float().mean()) < 0.3  # the two words of the first row
    assert (dropped[:, 0] == 49406).all() and (dropped[0::2, 3] == 49407).all() and (dropped[1::2, 2] == 49407).all()

"""Issue 11's rows and goals on hand-made rows: ablations from the default config, sparse rows, activity table."""

from benchmarks import quality_parts as qp


def _row(n20: float, groups=None) -> dict:
    seed = {"test_groups": groups} if groups else {}
    return {"mean": {"test/ndcg@20": n20}, "per_seed": {"0": seed, "1": seed}}


def test_families_ablate_each_part_of_the_default() -> None:
    fams = qp.part_families()
    assert fams["id_tuned"][1]["item_graphs"] == "" and not any(fams["id_tuned"][1][k] for k in qp.CONTENT)
    for g in qp.GRAPHS:  # each graph dropped alone
        assert g not in fams[f"no_{g}_graph"][1]["item_graphs"].split(",")
    sparse = qp.sparse_families(("LightGCN", {"model": "lightgcn"}, [{"lr": 1e-3}]), ("EASE", {"model": "ease"}, []))
    assert all(f[1]["train_fraction"] == qp.SPARSE for f in sparse.values())
    assert sparse["sparse_lightgcn"][2] == [{"lr": 1e-3}] and sparse["sparse_ease"][2]


def test_goal_lines_and_activity_table() -> None:
    g = [{"label": "G1: 1-5 train interactions", "users": 10, "metrics": {"ndcg@20": 0.2}},
         {"label": "G2: 6-9 train interactions", "users": 12, "metrics": {"ndcg@20": 0.4}}]
    g2 = [{**x, "metrics": {"ndcg@20": 2 * x["metrics"]["ndcg@20"]}} for x in g]
    models = {qp.DEFAULT_ROW: _row(0.35, g2), qp.ID_ROW: _row(0.34, g), "EASE": _row(0.34),
              "Sparse 20%: full model (configs/ml100k.toml)": _row(0.23), "Sparse 20%: LightGCN": _row(0.20)}
    lines = qp.part_lines(models)
    assert any("/ `EASE` 0.3400 = 1.029x (goal >= 1.03x: **missed**)" in line for line in lines)
    assert any("= 1.029x (goal >= 1.02x: met)" in line for line in lines)
    assert any("sparse 20%: default test NDCG@20 0.2300 / LightGCN 0.2000 = 1.150x (goal >= 1.15x: met)" in line
               for line in lines)
    table = qp.activity_lines(models, [(qp.ID_ROW, qp.DEFAULT_ROW)])
    assert "| G1: 1-5 train interactions | 10 | 0.2000 | 0.4000 | 2.000x |" in table
    assert qp.activity_lines(models, [("EASE", qp.DEFAULT_ROW)]) == []  # no groups: no table

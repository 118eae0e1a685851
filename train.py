"""Train a recommender on a saved KG, select it on validation NDCG@20, test it once, export embeddings.

    python train.py --config configs/ml100k.toml [--key value ...]
    torchrun --nproc_per_node 2 train.py --config configs/ml100k.toml --distributed true --content_refresh 1

Read top to bottom: config (training/config.py) -> data (KG, split, features, GraphInputs from the TRAINING
interactions only) -> model ("mmkg" or a baseline; training/model_factory.py) -> epochs of BPR / softmax
mini-batches over the training edges (training/epoch.py; each process a shard under --distributed) ->
validation every ``eval_every`` epochs with early stopping (never the test set) -> with ``ease_blend``, a
closed-form item-item branch added to its scores, L2 and weight chosen on validation
(evaluation/closed_form_selection.py) -> the best-validation checkpoint is tested once. Writes into ``--out``
(training/checkpoints.py): ``last.pt`` (every epoch, for --resume), ``best.pt`` (with the branch's ``B``),
``metrics.json``, ``embeddings.safetensors`` + ``ids.json`` (serving; the dot-product part only), ``tb/``
(TensorBoard). Checkpoints hold only tensors / dicts / lists / str / numbers (``torch.load(weights_only=True)``)
and are written to a temporary file, then renamed.
"""

from __future__ import annotations

import gc
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from evaluation.closed_form_selection import select_closed_form
from gnn.graph_inputs import build_graph_inputs
from gnn.negative_sampling import NegativeSampler
from gnn.recommender import FittedRecommender, TrainableRecommender, make_score_fn
from kg.errors import MMKGError
from kg.model.graph import KnowledgeGraph
from kg.model.splits import make_split
from training.checkpoints import atomic_save, export_embeddings, write_json
from training.config import RESUME_INVARIANT, ConfigError, TrainConfig, config_dict, parse_config, pick_device
from training.epoch import train_epoch
from training.model_factory import build_model, load_features
from training.runtime import flush_denormals, keep_freed_memory


def main(argv: list[str] | None = None) -> int:
    try:
        return run(parse_config(sys.argv[1:] if argv is None else argv))
    except MMKGError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def run(cfg: TrainConfig) -> int:
    # ---------------------------------------------------------------- runtime
    rank, world, local_rank = 0, 1, 0
    if cfg.distributed:
        if "RANK" not in os.environ:
            raise ConfigError("--distributed needs torchrun (RANK / WORLD_SIZE are not set)")
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = pick_device(cfg.device, local_rank)
    if cfg.distributed:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if device.type == "cpu":
        flush_denormals()  # tiny gradients through the zero-initialised gates: no per-element microcode assists
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        warnings.filterwarnings("once", message=".*does not have a deterministic implementation.*")
    if cfg.neighbor_sampling:
        from gnn.adjacency import neighbor_sampling_backend

        found = neighbor_sampling_backend()
        print("note: neighbour-sampled mini-batching needs pyg-lib or torch-sparse; " + (
            "neither is importable, so training runs full-graph" if found is None else
            f"{found} is importable, but this trainer propagates full-graph (sampled training not implemented)"),
            file=sys.stderr)
    (out := Path(cfg.out)).mkdir(parents=True, exist_ok=True)
    # ------------------------------------------------------------------- data
    kg = KnowledgeGraph.load(cfg.kg)
    inter = kg.interactions()
    split = make_split(inter, cfg.split, tuple(cfg.split_ratios), cfg.split_seed, cfg.cold_fraction, cfg.train_fraction)
    train_part, valid_part, test_part = split.parts(inter)
    feats, identities = load_features(cfg, kg)
    inputs = build_graph_inputs(kg, train_part, feats).to(device)
    from evaluation.protocol import TestEvaluator, ValidationEvaluator
    from evaluation.ranking import build_user_item_sets

    sets = [build_user_item_sets(p.user, p.item, inputs.num_users, inputs.num_items)
            for p in (train_part, valid_part, test_part)]
    validator = ValidationEvaluator(sets[0], sets[1], cfg.ks, cfg.main_metric, cfg.eval_batch_size)
    from evaluation.checkpoint_scoring import ids_digest

    meta = {"format": "mmkgrec-train/1", "model": cfg.model, "config": config_dict(cfg),
            "kg_dir": str(Path(cfg.kg).resolve()), "encoders": identities,
            "id_maps": {"user": list(kg.ids("user")), "item": list(kg.ids("item")),
                        "entity": ids_digest(kg.ids("entity"))},
            "split": {"method": split.method, "ratios": list(cfg.split_ratios), "seed": split.seed,
                      "cold_fraction": cfg.cold_fraction, "train_fraction": cfg.train_fraction,
                      "cold_items": split.cold_items.tolist()}}
    # ------------------------------------------------------------------ model
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, inputs)
    history: dict[str, Any] = {"valid": [], "epoch_seconds": [], "best_epoch": None, "best_score": None, "bad": 0,
                               "stopped": False, "epoch": 0}
    if isinstance(model, FittedRecommender):
        t0 = time.perf_counter()
        model.fit(inputs.train_user, inputs.train_item, inputs.num_users, inputs.num_items)
        history["fit_seconds"] = time.perf_counter() - t0
        result = validator.evaluate(model.score)
        history["valid"].append({"epoch": 0, **{k: v["mean"] for k, v in result.metrics.items()}})
        atomic_save({**meta, "model_state": {}, "metrics": {"valid": history["valid"][-1]}}, out / "best.pt")
    else:
        model.to(device)
        core = model
        if cfg.distributed:
            model = torch.nn.parallel.DistributedDataParallel(
                core, device_ids=[device.index] if device.type == "cuda" else None)
        opt = torch.optim.Adam(core.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        ema = AveragedModel(core, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay)) if cfg.ema_decay > 0 else None
        scored = core if ema is None else ema.module  # what validation ranks and best.pt keeps
        if cfg.resume and (out / "last.pt").is_file():
            ck = torch.load(out / "last.pt", map_location=device, weights_only=True)
            changed = [k for k in RESUME_INVARIANT  # a field newer than the checkpoint: its default
                       if ck["config"].get(k, getattr(TrainConfig, k, None)) != config_dict(cfg)[k]]
            if changed:
                raise ConfigError(f"{out / 'last.pt'}: cannot resume, the config changed ({', '.join(changed)})")
            core.load_state_dict(ck["model_state"])
            opt.load_state_dict(ck["optimizer_state"])
            if ema is not None:
                ema.load_state_dict(ck["ema_state"])
            history = ck["history"]
            if rank == 0:
                print(f"resumed from {out / 'last.pt'} after epoch {history['epoch']}", file=sys.stderr)
        elif cfg.resume and rank == 0:
            print(f"note: --resume but no {out / 'last.pt'} yet; starting from scratch", file=sys.stderr)
        t0 = time.perf_counter()
        core.prepare(inputs)  # structure derived from the inputs once (item-item graphs, KG slots), not per epoch
        history.setdefault("prepare_seconds", time.perf_counter() - t0)
        sampler = NegativeSampler(inputs.train_user, inputs.train_item, inputs.num_items, cfg.negative_sampling,
                                  exclude_items=torch.from_numpy(split.cold_items))  # new items: not yet there
        writer = None
        if cfg.tensorboard and rank == 0:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(out / "tb"), purge_step=history["epoch"] + 1)
        epoch = history["epoch"]
        while not history["stopped"] and epoch < cfg.epochs:
            epoch += 1
            core.train()
            t0 = time.perf_counter()
            with keep_freed_memory():  # per-step temporaries reuse freed memory, not fresh page-faulted mmaps
                losses = train_epoch(model, core, inputs, sampler, opt, cfg, epoch, rank, world, ema)
            history["epoch_seconds"].append(time.perf_counter() - t0)
            history.setdefault("train", []).append({"epoch": epoch, "loss": float(sum(losses.values()))})
            history["epoch"] = epoch
            stop = [False]
            if rank == 0:
                scalars = {f"train/{k}": v for k, v in losses.items()}
                scalars["train/epoch_seconds"] = history["epoch_seconds"][-1]
                improved = False
                if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
                    core.eval()
                    scored.eval()
                    result = validator.evaluate(scored.score_fn(inputs))
                    metrics = {k: v["mean"] for k, v in result.metrics.items()}
                    history["valid"].append({"epoch": epoch, **metrics})
                    scalars.update({f"valid/{k}": v for k, v in metrics.items()})
                    score = metrics[cfg.main_metric]
                    improved = history["best_score"] is None or score > history["best_score"]
                    if improved:
                        history.update(best_score=score, best_epoch=epoch, bad=0)
                    else:
                        history["bad"] += 1
                    history["stopped"] = history["bad"] >= cfg.patience
                    print(f"epoch {epoch}: loss {sum(losses.values()):.4f}, valid {cfg.main_metric} {score:.4f}"
                          f"{' *' if improved else ''} ({history['epoch_seconds'][-1]:.1f}s/epoch)", file=sys.stderr)
                for tag, value in scalars.items() if writer is not None else ():
                    writer.add_scalar(tag, value, epoch)
                ck = {**meta, "model_state": core.state_dict(), "optimizer_state": opt.state_dict(),
                      "history": history, "metrics": {"valid": history["valid"][-1] if history["valid"] else {}}}
                if ema is not None:  # resume needs both; the best checkpoint holds the averaged weights it scored
                    ck["ema_state"] = ema.state_dict()
                if improved:
                    atomic_save({**ck, "model_state": scored.state_dict()}, out / "best.pt")
                atomic_save(ck, out / "last.pt")
                stop = [history["stopped"]]
            if cfg.distributed:
                dist.broadcast_object_list(stop, src=0)
            history["stopped"] = stop[0]
        if writer is not None:
            writer.close()
        if cfg.distributed:  # the ranks' parameters must agree after training
            flat = torch.cat([p.detach().double().flatten().cpu() for p in core.parameters()])
            history["rank_checksums"] = [None] * world
            dist.all_gather_object(history["rank_checksums"], [float(flat.sum()), float(flat.pow(2).sum())])
        if rank == 0:
            best = torch.load(out / "best.pt", map_location=device, weights_only=True)
            core.load_state_dict(best["model_state"])
            core.eval()
            if cfg.ease_blend:  # the closed-form item-item branch: L2 and weight chosen on validation only
                t0 = time.perf_counter()
                history["closed_form"] = chosen = select_closed_form(
                    core, inputs, validator, cfg.ease_blend_regs, cfg.ease_blend_weights, cfg.main_metric)
                chosen["seconds"] = time.perf_counter() - t0
                best.update(model_state=core.state_dict(), metrics={"valid": chosen["valid"]}, closed_form={
                    k: chosen[k] for k in ("reg", "weight", "scale", "factor")})
                atomic_save(best, out / "best.pt")
                print(f"closed-form branch: L2 {chosen['reg']}, weight {chosen['weight']} -> valid "
                      f"{cfg.main_metric} {chosen['valid'][cfg.main_metric]:.4f} (model alone "
                      f"{chosen['base_valid'][cfg.main_metric]:.4f})", file=sys.stderr)
    # ------------------------------------------------------------------- test
    if rank == 0:
        tester = TestEvaluator(sets[0], sets[1], sets[2], cfg.ks, cfg.eval_batch_size, cfg.test_resamples, cfg.seed)
        scorer = model if isinstance(model, FittedRecommender) else core
        score_fn = make_score_fn(scorer, inputs)
        result = tester.evaluate(score_fn, str((out / "best.pt").resolve()))
        test = {k: v["mean"] for k, v in result.metrics.items()}
        ci = {k: list(v["ci95"]) for k, v in result.metrics.items() if v["ci95"]}
        best = torch.load(out / "best.pt", map_location="cpu", weights_only=True)
        best["metrics"] = {**best.get("metrics", {}), "test": test}
        atomic_save(best, out / "best.pt")
        groups = [{**g, "metrics": dict(g["metrics"])} for g in result.groups]  # by training activity
        summary = {"model": cfg.model, "test": test, "test_ci95": ci, "test_groups": groups, **history}
        write_json(summary, out / "metrics.json")
        if isinstance(scorer, TrainableRecommender):
            export_embeddings(scorer, inputs, kg, out)
        print("test: " + ", ".join(f"{k} {v:.4f}" for k, v in test.items() if k[:4] in ("reca", "ndcg")),
              file=sys.stderr)
    if cfg.distributed:
        dist.barrier()
        del model  # the DDP wrapper's reducer holds the group: let it go first (no gloo work left at exit)
        gc.collect()
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Command line: ``python -m seqnb {datasets,run,grid,results,reproduce}``.

    python -m seqnb datasets
    python -m seqnb run --dataset Amazon2014Beauty_550_LOU --num-blocks 1 --epochs 100
    python -m seqnb run --config my_run.yaml
    python -m seqnb run --dataset csv:/data/mine.csv --epochs 20     # your own user,item,timestamp
    python -m seqnb grid --chapter zero_block --profile full --datasets Amazon2014Beauty_550_LOU
    python -m seqnb results --chapter shuffle
    python -m seqnb reproduce --profile full

Every value is checked before any work starts; a bad one is reported with the allowed ones.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from seqnb.config import RunConfig, unique_runs

_BOOL = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


def _parse_value(name: str, text: str, default: Any) -> Any:
    """Turn a command-line string into the type of the RunConfig field."""
    try:
        if name == "smooth_band":
            if text.lower() in ("none", ""):
                return None
            lo, hi = (int(x) for x in text.replace("[", "").replace("]", "").split(","))
            return (lo, hi)
        if name in ("remove_seen", "max_users") and text.lower() == "none":
            return None
        if isinstance(default, bool) or name == "remove_seen":
            if text.lower() not in _BOOL:
                raise ValueError
            return _BOOL[text.lower()]
        if isinstance(default, int) or name == "max_users":
            return int(text)
        if isinstance(default, float):
            return float(text)
        return text
    except ValueError:
        raise SystemExit(f"error: --{name.replace('_', '-')} {text!r} is not a valid value") from None


_HELP = {
    "dataset": "a registered name (see `python -m seqnb datasets`) or csv:PATH, a "
    "user,item,timestamp file (users with >= 3 interactions kept, no item filter)",
    "device": "auto (CUDA if available), cpu, cuda or cuda:N; a label, not part of the run id",
    "chapter": "label only, not part of the run id",
}


def _config_flags(parser: argparse.ArgumentParser) -> None:
    for f in fields(RunConfig):
        parser.add_argument(
            f"--{f.name.replace('_', '-')}", dest=f.name, default=None, help=_HELP.get(f.name)
        )


def _config_from_args(args: argparse.Namespace, file_values: dict[str, Any]) -> RunConfig:
    defaults = {f.name: f.default for f in fields(RunConfig)}
    values = dict(file_values)
    for name, default in defaults.items():
        text = getattr(args, name, None)
        if text is not None:
            values[name] = _parse_value(name, text, default)
    if "dataset" not in values:
        raise SystemExit("error: --dataset is required (see `python -m seqnb datasets`)")
    try:
        return RunConfig.from_dict(values)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None


def _check_datasets(names: Sequence[str]) -> None:
    """Registered names, or ``csv:PATH`` of an existing file."""
    from seqnb.data import list_datasets
    from seqnb.results import csv_path

    known = {spec.name for spec in list_datasets()}
    for name in names:
        path = csv_path(name)
        if path is not None and not path.is_file():
            raise SystemExit(f"error: data set {name!r}: no such file {path}")
    unknown = [n for n in names if n not in known and csv_path(n) is None]
    if unknown:
        raise SystemExit(
            f"error: unknown data set(s) {unknown}; known data sets: {sorted(known)}, "
            "or csv:PATH for a user,item,timestamp file"
        )


def _check_device(device: str | None) -> None:
    """``auto``, ``cpu``, ``cuda[:N]``, ``mps``...; CUDA only where it is available."""
    if device is None or device == "auto":
        return
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise SystemExit(
            f"error: invalid --device {device!r}: expected auto, cpu, cuda or cuda:N"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(
            f"error: --device {device!r}: CUDA is not available here; use cpu or auto"
        )


def cmd_datasets(args: argparse.Namespace) -> int:
    from seqnb.data import format_dataset_table

    print(format_dataset_table(args.data_root))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from seqnb.results import ResultStore, get_or_run, run

    file_values: dict[str, Any] = {}
    if args.config:
        import yaml

        with open(args.config, encoding="utf-8") as f:
            file_values = yaml.safe_load(f) or {}
        if not isinstance(file_values, dict):
            raise SystemExit(f"error: {args.config} must hold a mapping of configuration keys")
    config = _config_from_args(args, file_values)
    _check_datasets([config.dataset])
    _check_device(config.device)
    store = ResultStore(args.results)
    if store.has(config) and not args.force:
        print(f"already stored: {store.json_path(config.run_id)}")
        return 0
    if args.force:  # overwrite atomically: a killed rerun leaves the old result in place
        result = run(config, store=store)
    else:
        result = get_or_run(config, train=True, root=args.results)
    print(f"stored {store.json_path(config.run_id)}")
    print(" ".join(f"{k}={v:.4f}" for k, v in result["test"].items() if "@" in k))
    return 0


def _grid_configs(args: argparse.Namespace) -> tuple[list[RunConfig], list[RunConfig]]:
    """The chapters' runs once each (what the grid trains), and every chapter's runs
    (shared ones under each chapter that shows them)."""
    from seqnb.experiments import CHAPTERS, TRAINING_CHAPTERS, chapter_configs

    chapters = args.chapters or list(TRAINING_CHAPTERS)
    bad = [c for c in chapters if c not in CHAPTERS]
    if bad:
        raise SystemExit(f"error: unknown chapter(s) {bad}; chapters: {list(CHAPTERS)}")
    if args.datasets:
        _check_datasets(args.datasets)
    _check_device(args.device)
    overrides: dict[str, Any] = {}
    if args.epochs is not None:
        overrides["epochs"] = int(args.epochs)
    if args.device is not None:
        overrides["device"] = args.device
    per_chapter: list[RunConfig] = []
    for chapter in chapters:
        if chapter not in TRAINING_CHAPTERS:
            continue  # movielens_genres is computed live
        try:
            per_chapter += chapter_configs(
                chapter, args.profile, datasets=args.datasets, seeds=args.seeds, **overrides
            )
        except ValueError as err:
            raise SystemExit(f"error: {err}") from None
    return unique_runs(per_chapter), per_chapter


def cmd_grid(args: argparse.Namespace) -> int:
    from seqnb.analysis import coverage_matrix, coverage_rows, run_label
    from seqnb.grid import run_grid
    from seqnb.results import ResultStore

    if args.workers < 1:
        raise SystemExit(f"error: --workers must be a positive integer, got {args.workers}")
    configs, per_chapter = _grid_configs(args)
    if args.dry_run:
        store = ResultStore(args.results)
        stored = [store.has(c) for c in configs]
        for c, have in zip(configs, stored, strict=True):
            print(f"{c.run_id}  {c.chapter}  seed={c.seed}  {'stored' if have else 'to train':8}  "
                  f"{run_label(c.to_dict())}")
        print(f"{len(configs)} runs: {sum(stored)} stored, {len(configs) - sum(stored)} to train")
        if configs:
            print("\nstored / runs per chapter and data set (a run that chapters share counts "
                  "in each):")
            print(coverage_matrix(coverage_rows(per_chapter, store)).to_string(index=False))
        return 0
    summary = run_grid(configs, root=args.results, backend=args.backend, workers=args.workers)
    print(f"{summary['trained']} trained, {summary['skipped']} already stored, "
          f"{summary['failed']} failed")
    return 1 if summary["failed"] else 0


def cmd_results(args: argparse.Namespace) -> int:
    import pandas as pd

    from seqnb.analysis import run_label
    from seqnb.chapter import run_commits
    from seqnb.experiments import CHAPTERS
    from seqnb.results import ResultStore, results_frame

    if args.chapter is not None and args.chapter not in CHAPTERS:
        raise SystemExit(f"error: unknown chapter {args.chapter!r}; chapters: {list(CHAPTERS)}")
    frame = results_frame(ResultStore(args.results).all())
    if frame.empty:
        print("no stored results")
        return 0
    if args.chapter:
        frame = frame[_shown_by(args.chapter, frame)]
    if args.dataset:
        frame = frame[frame["dataset"] == args.dataset]
    if frame.empty:
        print("no stored results match the filters")
        return 0
    # the setting in the chapters' words tells a grid's runs apart (blocks, band, self term)
    frame = frame.assign(setting=[run_label(row) for row in frame.to_dict("records")])
    band = frame["smooth_band"].map(lambda b: tuple(b) if b is not None else (-1, -1))
    order = frame.assign(band=band).sort_values(
        ["dataset", "chapter", "model", "num_blocks", "maxlen", "band", "smooth_self_loops",
         "seed"], ascending=[True] * 6 + [False, True], kind="stable").index
    frame = frame.loc[order]
    # every commit that trained the run (a resumed run may name several)
    frame["code"] = frame["code_commits"].map(run_commits)
    columns = ["run_id", "chapter", "setting", "maxlen", "seed", "HR@10", "NDCG@10",
               "best_epoch", "device_name", "wall_seconds", "code"]
    with pd.option_context("display.width", 250, "display.max_rows", 500):
        print(frame[[c for c in columns if c in frame]].to_string(index=False))
    return 0


def _shown_by(chapter: str, frame: Any) -> Any:
    """Rows a chapter shows: trained under its label, or in its grid (a run that two
    chapters share is stored once, with the label of the chapter that trained it)."""
    from seqnb.experiments import TRAINING_CHAPTERS, chapter_configs

    wanted: set[str] = set()
    keys = ["dataset", "seed", "epochs"]
    if chapter in TRAINING_CHAPTERS and set(keys) <= set(frame):
        # the chapter's grid for each stored (data set, seed, epochs): `grid --epochs N` runs too
        combos = frame[keys].dropna().drop_duplicates().itertuples(index=False)
        for dataset, seed, epochs in combos:
            for profile in ("full", "smoke"):
                grid = chapter_configs(chapter, profile, [dataset], [int(seed)], epochs=int(epochs))
                wanted |= {c.run_id for c in grid}
    labelled = frame["chapter"] == chapter if "chapter" in frame else False
    return frame["run_id"].isin(wanted) | labelled


def build_parser() -> argparse.ArgumentParser:
    # allow_abbrev=False: only exact flag names (they are also the papermill parameters)
    parser = argparse.ArgumentParser(
        prog="python -m seqnb", description=__doc__.split("\n")[0], allow_abbrev=False
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("datasets", help="list the registered data sets", allow_abbrev=False)
    p.add_argument("--data-root", default=None)
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("run", help="train and store one configuration", allow_abbrev=False)
    p.add_argument("--config", help="YAML file with configuration keys (flags override it)")
    p.add_argument("--results", default=None, help="result store root (default: results/)")
    p.add_argument("--force", action="store_true", help="retrain even if stored")
    _config_flags(p)
    p.set_defaults(func=cmd_run)

    for name, helptext in (
        ("grid", "run chapters' grids, skipping stored runs"),
        ("reproduce", "run every chapter's grid (the whole book)"),
    ):
        p = sub.add_parser(name, help=helptext, allow_abbrev=False)
        p.add_argument("--chapters", "--chapter", nargs="+", default=None)
        p.add_argument("--profile", default="full", choices=["smoke", "full"])
        p.add_argument("--datasets", "--dataset", nargs="+", default=None)
        p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
        p.add_argument("--epochs", type=int, default=None)
        p.add_argument("--device", default=None)
        p.add_argument("--results", default=None)
        p.add_argument("--backend", choices=["local", "ray"], default="local")
        p.add_argument("--workers", type=int, default=1,
                       help="local backend: runs trained at once, in separate processes")
        p.add_argument("--dry-run", action="store_true", help="list the runs, train nothing")
        p.set_defaults(func=cmd_grid)

    p = sub.add_parser("results", help="list stored results", allow_abbrev=False)
    p.add_argument("--chapter", default=None)
    p.add_argument("--dataset", default=None)
    p.add_argument("--results", default=None)
    p.set_defaults(func=cmd_results)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())


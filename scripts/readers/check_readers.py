"""Reads balanced-dpo outputs with the real Python clients: pyarrow, polars and HF datasets.

usage: python scripts/readers/check_readers.py DATASET_DIR [DATASET_DIR ...] [--export EXPORT_DIR ...]

Needs pyarrow, polars and datasets (pip, in a venv). Not part of CI: CI checks the same layout rules with DuckDB and
the file-name rules in test/outputs/. Prints one line per check and exits 1 if any failed.
"""
import json
import os
import sys
import traceback

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import datasets  # noqa: E402
import polars as pl  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.dataset as pads  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

failures = 0


def check(what, action):
    global failures
    try:
        result = action()
        print(f"ok    {what}: {result}")
    except Exception as error:  # a reader's failure is the result being reported
        failures += 1
        print(f"FAIL  {what}: {type(error).__name__}: {str(error).splitlines()[0][:200]}")
        if os.environ.get("CHECK_READERS_DEBUG"):
            traceback.print_exc()


def parquet_folders(root):
    for folder, _dirs, files in sorted(os.walk(root)):
        if any(name.endswith(".parquet") for name in files) and "/." not in folder:
            yield folder


def arrow_folders(root):
    for table in ("prompts", "images", "pairs", "rejects"):
        folder = os.path.join(root, table)
        if os.path.isdir(folder):
            yield folder


def card_configs(root):
    path = os.path.join(root, "README.md")
    if not os.path.exists(path):
        return []
    names = []
    for line in open(path, encoding="utf-8"):
        if line.startswith("- config_name: "):
            names.append(json.loads(line[len("- config_name: "):]))
    return names


def check_dataset(root):
    for folder in parquet_folders(root):
        rel = os.path.relpath(folder, root)
        others = [n for n in os.listdir(folder) if not n.endswith(".parquet")]
        check(f"{rel}: only Parquet files in the folder", lambda: "yes" if not others else (_ for _ in ()).throw(ValueError(f"also {others}")))
        check(f"pyarrow pq.read_table({rel})", lambda: f"{pq.read_table(folder).num_rows} rows")
        check(f"pyarrow ds.dataset({rel})", lambda: f"{pads.dataset(folder, format='parquet').count_rows()} rows")
        check(f"polars scan_parquet({rel})", lambda: f"{pl.scan_parquet(folder).select(pl.len()).collect().item()} rows")
    for folder in arrow_folders(root):
        rel = os.path.relpath(folder, root)
        def read_parts():
            rows = 0
            for name in sorted(os.listdir(folder)):
                if name.endswith(".arrow"):
                    with pa.memory_map(os.path.join(folder, name)) as source:
                        rows += pa.ipc.open_file(source).read_all().num_rows
            return f"{rows} rows"
        check(f"pyarrow ipc.open_file({rel}/*.arrow, memory-mapped)", read_parts)
        check(f"HF load_dataset('arrow', data_files={rel}/part-*.arrow)", lambda: str({k: v.num_rows for k, v in datasets.load_dataset("arrow", data_files=os.path.join(folder, "part-*.arrow")).items()}))
        check(f"polars read_ipc({rel}/*.arrow)", lambda: f"{sum(pl.read_ipc(os.path.join(folder, n)).height for n in os.listdir(folder) if n.endswith('.arrow'))} rows")
    check(f"HF load_dataset({os.path.basename(root)}) (default config)", lambda: str({k: v.num_rows for k, v in datasets.load_dataset(root).items()}))
    for name in card_configs(root):
        check(f"HF load_dataset({os.path.basename(root)}, {name!r})", lambda: str({k: v.num_rows for k, v in datasets.load_dataset(root, name).items()}))


def check_export(root):
    def splits():
        loaded = datasets.load_dataset(root)
        return str({k: v.num_rows for k, v in loaded.items()})
    check(f"HF load_dataset(export {os.path.basename(root)}) splits", splits)
    def trainer_columns():
        loaded = datasets.load_dataset(root)
        split = next(iter(loaded))
        row = loaded[split][0]
        missing = [c for c in ("caption", "jpg_0", "jpg_1", "label_0", "label_1", "model_0", "model_1") if c not in row]
        if missing:
            raise ValueError(f"missing {missing}")
        labels = set()
        for s in loaded:
            labels.update(loaded[s]["label_0"])
        if any(label not in (0, 1) for label in labels):
            raise ValueError(f"label_0 values {sorted(labels)}: a tie would train as jpg_0 wins")
        return f"Diffusion-DPO columns present, label_0 in {sorted(labels)}"
    check(f"export {os.path.basename(root)}: trainer columns", trainer_columns)
    check(f"pyarrow ds.dataset(export/data)", lambda: f"{pads.dataset(os.path.join(root, 'data'), format='parquet').count_rows()} rows")
    check(f"polars scan_parquet(export/data)", lambda: f"{pl.scan_parquet(os.path.join(root, 'data')).select(pl.len()).collect().item()} rows")


def main(argv):
    exports = []
    dirs = []
    target = dirs
    for arg in argv:
        if arg == "--export":
            target = exports
            continue
        target.append(arg)
        target = dirs
    for root in dirs:
        print(f"== dataset {root}")
        check_dataset(root)
    for root in exports:
        print(f"== export {root}")
        check_export(root)
    print(f"{failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""A per-file function for `hpcscale map`: clean a JSON document, count its words.

    hpcscale map 'notes/*.json' cleaned/ --fn docs/examples/clean_json.py:clean

Each file's cleaned copy is written under its own ``out_dir``; the returned dict is
its row of ``cleaned/index.zarr`` (and ``index.csv``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path


def clean(path: str, out_dir: str, lowercase: bool = True) -> dict[str, int]:
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    words = re.findall(r"[^\W\d_]+(?:'[^\W\d_]+)?", str(doc.get("text", "")))
    if lowercase:
        words = [w.lower() for w in words]
    cleaned = {**doc, "text": " ".join(words)}
    (Path(out_dir) / "clean.json").write_text(json.dumps(cleaned, ensure_ascii=False),
                                              encoding="utf-8")
    return {"words": len(words), "unique_words": len(set(words))}

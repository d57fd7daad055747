#!/usr/bin/env python3
"""Reference values for p_adjust (udfs/src/adjust.rs).

Writes adjust.json beside this file: p-value vectors (decimal strings; null for NULL, "NaN"
for NaN, both of which stay NULL and are not counted) and, for each method, the adjusted
values from statsmodels.stats.multitest.multipletests applied to the non-missing p-values
('fdr_bh', 'fdr_by', 'holm', 'simes-hochberg', 'hommel', 'bonferroni'), which implement the
same procedures as R's p.adjust.

Run:  python3 testdata/reference/adjust.py   (numpy, statsmodels; versions are recorded)
"""
import json
import math
import pathlib

import numpy as np
import statsmodels
from statsmodels.stats.multitest import multipletests

from common import encode

METHODS = {"bh": "fdr_bh", "by": "fdr_by", "holm": "holm", "hochberg": "simes-hochberg",
           "hommel": "hommel", "bonferroni": "bonferroni"}
rng = np.random.default_rng(11)


def vector(name, p):
    present = [x for x in p if x is not None and not math.isnan(x)]
    expected = {}
    for ours, theirs in METHODS.items():
        adjusted = iter(multipletests(present, method=theirs)[1].tolist()) if present else iter(())
        expected[ours] = [None if x is None or math.isnan(x) else next(adjusted) for x in p]
    return {"name": name, "p": [encode(x) for x in p], "expected": expected}


vectors = [
    vector("R's example", [0.01, 0.02, 0.03, 0.04, 0.05]),
    vector("two values", [0.04, 0.01]),
    vector("one value", [0.2]),
    vector("ties and extremes", [0.0, 0.05, 0.05, 0.2, 1.0, 0.05, 0.001]),
    vector("NULL and NaN are skipped", [0.03, None, 0.2, float("nan"), 0.01, 0.5]),
    vector("1000 p-values, 5 % signal",
           (np.concatenate([rng.uniform(0, 1, 950), rng.uniform(0, 1e-4, 50)])).tolist()),
    vector("200 p-values for hommel", rng.beta(0.5, 1.0, 200).tolist()),
]
out = {
    "generated_by": "testdata/reference/adjust.py",
    "versions": {"numpy": np.__version__, "statsmodels": statsmodels.__version__},
    "vectors": vectors,
}
path = pathlib.Path(__file__).with_name("adjust.json")
path.write_text(json.dumps(out, indent=1) + "\n")
print(f"wrote {len(vectors)} vectors to {path}")

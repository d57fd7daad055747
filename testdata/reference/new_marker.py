#!/usr/bin/env python3
"""Reference values for the report sql/reports/new_marker.sql on the demo data (testdata/demo).

Writes new_marker.json beside this file: per biomarker, the clinical logistic model (age,
female) and the model with the biomarker, fitted by statsmodels GLM (binomial, IRLS to 1e-12),
then from each model's fitted risks on the samples where the biomarker was measured:

- auc_clinical, auc_with_marker: the AUC of the risks, counted exactly over all pairs;
- lr_chi2 = 2 (llf_full - llf_clinical) and lr_p, its chi-squared(1) upper tail;
- nri, nri_p, idi, idi_p: R's Hmisc::improveProb(p_clinical, p_full, is_case) (run through
  Rscript on the risks printed with %.17g), p = 2 pnorm(-|z|).

Rows with a NULL value are left out, as in the report. The report's fits stop at R glm's
default tolerance, so the test compares at 1e-6 (see udfs' reference_logistic for the fits
themselves).

Run:  python3 testdata/reference/new_marker.py   (numpy, scipy, statsmodels, pyarrow; Rscript
with Hmisc and jsonlite; versions are recorded)
"""
import json
import pathlib
import subprocess
import tempfile
from fractions import Fraction

import numpy as np
import pyarrow
import pyarrow.dataset as ds
import scipy
import scipy.stats
import statsmodels
import statsmodels.api as sm

HERE = pathlib.Path(__file__).parent
DEMO = HERE.parent / "demo"

R_PROGRAM = r"""
suppressPackageStartupMessages({ library(Hmisc); library(jsonlite) })
args <- commandArgs(TRUE)
inp <- fromJSON(args[1])
out <- lapply(inp, function(b) {
  r <- improveProb(as.numeric(b$p_old), as.numeric(b$p_new), as.numeric(b$y))
  list(nri = sprintf("%.17g", r$nri), nri_p = sprintf("%.17g", 2 * pnorm(-abs(r$z.nri))),
       idi = sprintf("%.17g", r$idi), idi_p = sprintf("%.17g", 2 * pnorm(-abs(r$z.idi))))
})
writeLines(toJSON(list(version = R.version.string,
                       hmisc = as.character(packageVersion("Hmisc")), results = out),
                  auto_unbox = TRUE), args[2])
"""


def exact_auc(risk, y):
    cases = risk[y]
    controls = risk[~y]
    wins = Fraction(0)
    for a in cases:
        wins += Fraction(int((controls < a).sum())) + Fraction(int((controls == a).sum()), 2)
    return float(wins / (len(cases) * len(controls)))


samples = ds.dataset(DEMO / "samples", format="parquet").to_table().to_pandas()
measurements = ds.dataset(DEMO / "measurements", format="parquet", partitioning="hive") \
    .to_table().to_pandas()
data = measurements.merge(samples, on="sample_id")
data = data[data["value"].notna() & data["age"].notna() & data["sex"].notna()]

payload, rows = {}, {}
for biomarker, d in sorted(data.groupby("biomarker")):
    y = d["is_case"].to_numpy(dtype=bool)
    clinical = np.column_stack([np.ones(len(d)), d["age"].to_numpy(float),
                                (d["sex"] == "F").to_numpy(float)])
    full = np.column_stack([clinical, d["value"].to_numpy(float)])
    fits = [sm.GLM(y.astype(float), x, family=sm.families.Binomial()).fit(tol=1e-12, maxiter=100)
            for x in (clinical, full)]
    p_old, p_new = (np.asarray(f.fittedvalues) for f in fits)
    lr = 2 * (fits[1].llf - fits[0].llf)
    rows[biomarker] = {
        "n_case": int(y.sum()), "n_control": int((~y).sum()),
        "auc_clinical": exact_auc(p_old, y), "auc_with_marker": exact_auc(p_new, y),
        "lr_chi2": float(lr), "lr_p": float(scipy.stats.chi2.sf(max(lr, 0.0), 1)),
    }
    payload[biomarker] = {"p_old": [f"{v:.17g}" for v in p_old],
                          "p_new": [f"{v:.17g}" for v in p_new], "y": [int(v) for v in y]}

with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    (tmp / "prog.R").write_text(R_PROGRAM)
    (tmp / "in.json").write_text(json.dumps(payload))
    subprocess.run(["Rscript", str(tmp / "prog.R"), str(tmp / "in.json"), str(tmp / "out.json")],
                   check=True)
    r = json.loads((tmp / "out.json").read_text())
for biomarker, res in r["results"].items():
    rows[biomarker].update({k: float(v) for k, v in res.items()})

out = {
    "generated_by": "testdata/reference/new_marker.py",
    "versions": {"R": r["version"], "Hmisc": r["hmisc"], "numpy": np.__version__,
                 "scipy": scipy.__version__, "statsmodels": statsmodels.__version__,
                 "pyarrow": pyarrow.__version__},
    "biomarkers": rows,
}
(HERE / "new_marker.json").write_text(json.dumps(out, indent=1) + "\n")
print(f"wrote {len(rows)} biomarkers to {HERE / 'new_marker.json'}")

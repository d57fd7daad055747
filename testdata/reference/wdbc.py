#!/usr/bin/env python3
"""Writes wdbc.csv beside this file: three columns of the Wisconsin Diagnostic Breast Cancer
data (W. N. Street, W. H. Wolberg, O. L. Mangasarian, UCI Machine Learning Repository, 1995;
CC BY 4.0), as scikit-learn ships it (`sklearn.datasets.load_breast_cancer`), with the
diagnosis as `malignant` (1 = malignant, scikit-learn's target 0).

The columns are the three on which R's glm converges and Discern once did not (issue: logistic
regression gives up on fits R completes): `mean concavity` (slow convergence), `area error` and
`worst area` (overlapping groups whose fitted probabilities reach 0 or 1 numerically).
logistic.R reads the file.

Run:  python3 testdata/reference/wdbc.py   (scikit-learn)
"""
import pathlib

import sklearn
from sklearn.datasets import load_breast_cancer

COLUMNS = {"mean_concavity": "mean concavity", "area_error": "area error",
           "worst_area": "worst area"}

data = load_breast_cancer()
names = list(data.feature_names)
index = [names.index(c) for c in COLUMNS.values()]
path = pathlib.Path(__file__).with_name("wdbc.csv")
with path.open("w") as f:
    f.write(f"# scikit-learn {sklearn.__version__} load_breast_cancer (UCI WDBC, CC BY 4.0)\n")
    f.write(",".join(["malignant", *COLUMNS]) + "\n")
    for row, target in zip(data.data, data.target):
        f.write(",".join([str(int(target == 0))] + [repr(float(row[i])) for i in index]) + "\n")
print(f"wrote {len(data.target)} rows to {path}")

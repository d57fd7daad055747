"""Helpers shared by the reference scripts: how inputs are written, how a case is laid out."""
import math


def encode(x):
    """Inputs as strings (Python's shortest round-trip repr), so that every reader parses the
    exact double: some JSON number parsers are off by an ulp, which matters for 1e9 + noise."""
    if x is None:
        return None
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return repr(float(x))


def make_case(expected, name, control, cases, extra=()):
    """One case: controls, then cases, then `extra` (value, is_case) rows; `expected` maps the
    values and labels to the reference results."""
    values = list(control) + list(cases) + [v for v, _ in extra]
    labels = [False] * len(control) + [True] * len(cases) + [c for _, c in extra]
    return {"name": name, "value": [encode(v) for v in values], "is_case": labels,
            "expected": expected(values, labels)}

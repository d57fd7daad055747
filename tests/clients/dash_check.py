"""Headless check of the Dash dashboard (deploy/dash/app.py) against a running `discern serve`.

Imports the app, serves it with werkzeug on a free loopback port in a thread, and talks to it
over HTTP the way the browser's Dash renderer does: the page, the layout, the callback list, and
one ROC callback. The numbers are compared with the same queries sent directly through psycopg.

Environment, as for the app: DISCERN_DSN (a libpq connection string), PGPASSWORD (read by
libpq) and, when the report is not the repository's, DISCERN_REPORT_SQL. DISCERN_DASH_APP
overrides the path of app.py. Each check prints one "ok  <name>" line; any failure raises, and
the script exits non-zero.
"""

import base64
import importlib.util
import json
import os
import re
import threading
import urllib.request
from pathlib import Path

import numpy as np
import psycopg
from werkzeug.serving import make_server

REPO = Path(__file__).resolve().parents[2]
APP_PATH = Path(os.environ.get("DISCERN_DASH_APP", REPO / "deploy/dash/app.py"))
REPORT_SQL = Path(os.environ.get("DISCERN_REPORT_SQL", REPO / "sql/reports/discrimination.sql"))
DSN = os.environ["DISCERN_DSN"]
BIOMARKER = "iron"
# Straight to the loopback server, whatever proxy the environment names.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def check(name, condition, detail=""):
    if not condition:
        raise AssertionError(f"{name}: {detail}")
    print(f"ok  {name}")


def load_app_module():
    spec = importlib.util.spec_from_file_location("discern_dash_app", APP_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def strict_json(text):
    """JSON as a browser's JSON.parse reads it: NaN and Infinity are errors."""
    def reject(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=reject)


def http(base, path, body=None):
    """(status, text) of a GET, or of a JSON POST when `body` is given."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with OPENER.open(request, timeout=60) as response:
        return response.status, response.read().decode()


def array(value):
    """A figure's data array: a JSON list, or plotly's typed array {"dtype", "bdata"}."""
    if isinstance(value, dict):
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).tolist()
    return list(value)


def find_component(node, component_id):
    """The component with `component_id` in a serialized Dash layout tree."""
    if isinstance(node, list):
        return next(filter(None, (find_component(n, component_id) for n in node)), None)
    if not isinstance(node, dict):
        return None
    props = node.get("props", {})
    if props.get("id") == component_id:
        return node
    return find_component(props.get("children"), component_id)


def direct_numbers():
    """The report's row count and the AUC of BIOMARKER, straight from the server."""
    report_sql = REPORT_SQL.read_text(encoding="utf-8")
    with psycopg.connect(DSN) as conn:
        rows = conn.execute(report_sql).fetchall()
        (auc,) = conn.execute(
            "SELECT auc(m.value, s.is_case) FROM measurements m "
            "JOIN samples s USING (sample_id) WHERE m.biomarker = %s",
            (BIOMARKER,),
        ).fetchone()
    return len(rows), auc


def check_page(base):
    status, text = http(base, "/")
    check("GET / answers the Dash page", status == 200 and "dash" in text, status)


def check_layout(base, n_report):
    status, text = http(base, "/_dash-layout")
    layout = strict_json(text)
    check("GET /_dash-layout is standard JSON", status == 200, status)

    volcano = find_component(layout, "volcano")["props"]["figure"]["data"][0]
    n_points = len(array(volcano["x"]))
    check("volcano: one point per report row", n_points == n_report > 0, (n_points, n_report))
    check("volcano: one height per point", len(array(volcano["y"])) == n_points)

    options = find_component(layout, "biomarker")["props"]["options"]
    values = [o["value"] if isinstance(o, dict) else o for o in options]
    check(f"dropdown lists {BIOMARKER}", BIOMARKER in values, values)

    rows = find_component(layout, "report")["props"]["data"]
    check("report table: one row per biomarker", len(rows) == n_report, (len(rows), n_report))


def roc_callback(base):
    """The registered callback that draws roc.figure, from /_dash-dependencies."""
    status, text = http(base, "/_dash-dependencies")
    callbacks = [c for c in strict_json(text) if c["output"] == "roc.figure"]
    check("GET /_dash-dependencies lists the ROC callback", status == 200 and len(callbacks) == 1)
    return callbacks[0]


def check_roc(base, auc_direct):
    callback = roc_callback(base)
    (source,) = callback["inputs"]
    # The body dash-renderer posts for a single-output callback (its handleServerside):
    # outputs is the one output, not a list; every input carries its current value.
    body = {
        "output": callback["output"],
        "outputs": {"id": "roc", "property": "figure"},
        "inputs": [{"id": source["id"], "property": source["property"], "value": BIOMARKER}],
        "changedPropIds": [f"{source['id']}.{source['property']}"],
        "state": [],
    }
    status, text = http(base, "/_dash-update-component", body)
    figure = strict_json(text)["response"]["roc"]["figure"]
    check("POST /_dash-update-component draws the ROC figure", status == 200, status)

    curve = figure["data"][0]
    fpr, tpr = array(curve["x"]), array(curve["y"])
    check("ROC curve runs from (0, 0)", (fpr[0], tpr[0]) == (0.0, 0.0), (fpr[0], tpr[0]))
    check("ROC curve ends at (1, 1)", (fpr[-1], tpr[-1]) == (1.0, 1.0), (fpr[-1], tpr[-1]))
    check("ROC sensitivities within [0, 1]", all(0.0 <= y <= 1.0 for y in tpr))
    check("ROC 1 - specificity within [0, 1], non-decreasing",
          all(0.0 <= a <= b <= 1.0 for a, b in zip(fpr, fpr[1:])))

    title = figure["layout"]["title"]["text"]
    match = re.search(r"AUC = ([-+0-9.eE]+|nan)", title)
    check("ROC title shows the AUC", match is not None, title)
    auc_shown = float(match.group(1))
    check("AUC in the title equals SELECT auc(...) to 1e-12",
          abs(auc_shown - auc_direct) <= 1e-12, (auc_shown, auc_direct))
    area = float(np.trapezoid(tpr, fpr))
    check("area under the plotted curve equals the AUC", abs(area - auc_direct) <= 1e-9,
          (area, auc_direct))


def main():
    n_report, auc_direct = direct_numbers()
    module = load_app_module()
    check("app module exposes app and server", module.server is module.app.server)
    httpd = make_server("127.0.0.1", 0, module.app.server, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_port}"
    try:
        check_page(base)
        check_layout(base, n_report)
        check_roc(base, auc_direct)
    finally:
        httpd.shutdown()
        thread.join()


if __name__ == "__main__":
    main()

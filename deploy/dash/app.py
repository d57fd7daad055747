"""Discern's dashboard: the discrimination report as a Plotly Dash app.

One page, read from a running `discern serve` over the PostgreSQL wire protocol:

  * a volcano plot of the report (log2 fold change against -log10 of the Mann-Whitney q value,
    one point per biomarker),
  * a biomarker picker and that biomarker's ROC curve, computed by the server's roc_curve() and
    auc() aggregates,
  * the report itself as a table.

Configuration, all from the environment:

  DISCERN_DSN         libpq connection string, passed to libpq unchanged, e.g.
                      "host=db.example port=5432 dbname=discern user=discern
                       sslmode=verify-full sslrootcert=/etc/discern/server.crt"
                      (empty: libpq's own PG* variables and defaults)
  PGPASSWORD          the password; libpq reads it itself, this app never sees or logs it
  DISCERN_REPORT_SQL  the report's SQL file (default: sql/reports/discrimination.sql of this
                      repository)
  DASH_HOST, DASH_PORT  where `python app.py` listens (default 127.0.0.1:8050)

The report is queried each time the page is loaded, so importing this module needs no server.
For production, serve `server` (a Flask app) with a WSGI server, e.g. `gunicorn app:server`.
"""

import math
import os
import re
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from dash import Dash, Input, Output, dash_table, dcc, html
from dash.dash_table.Format import Format, Scheme
from sqlalchemy import Engine, create_engine, event

DEFAULT_REPORT_SQL = Path(__file__).resolve().parents[2] / "sql/reports/discrimination.sql"

# One biomarker's ROC curve and AUC; the biomarker is a bound parameter.
ROC_SQL = """
SELECT roc_curve(m.value, s.is_case) AS roc, auc(m.value, s.is_case) AS auc
FROM measurements m
JOIN samples s USING (sample_id)
WHERE m.biomarker = %(b)s
"""

# A record's text form, "(threshold,sensitivity,specificity)", fields possibly double-quoted.
RECORD = re.compile(r'\(\s*"?([^,()"]*)"?\s*,\s*"?([^,()"]*)"?\s*,\s*"?([^,()"]*)"?\s*\)')

# The smallest positive double: a p value that underflowed to 0 still gets a finite height.
SMALLEST_P = 2.2250738585072014e-308


def make_engine(dsn: str) -> Engine:
    """A pooled SQLAlchemy engine (psycopg 3) that connects with the libpq string `dsn` as is.

    SQLAlchemy builds psycopg's arguments from the URL; the do_connect hook replaces them with
    the connection string so every libpq keyword (sslmode, sslrootcert, ...) reaches libpq
    untouched, while the dialect's own keyword arguments (its type adapters) stay.
    """
    engine = create_engine("postgresql+psycopg://", pool_pre_ping=True)

    @event.listens_for(engine, "do_connect")
    def _use_conninfo(_dialect, _record, cargs, _cparams):
        cargs[:] = [dsn]

    return engine


def load_report(engine: Engine, sql_path: Path) -> pd.DataFrame:
    """The discrimination report: one row per biomarker, most discriminating first."""
    with engine.connect() as conn:
        return pd.read_sql(sql_path.read_text(encoding="utf-8"), conn)


def load_roc(engine: Engine, biomarker: str) -> tuple[list[tuple[float, float, float]], float]:
    """(threshold, sensitivity, specificity) points and the AUC of one biomarker."""
    with engine.connect() as conn:
        row = conn.exec_driver_sql(ROC_SQL, {"b": biomarker}).one()
    return parse_roc(row.roc), row.auc


def parse_roc(roc) -> list[tuple[float, float, float]]:
    """roc_curve()'s list of {threshold, sensitivity, specificity} structs as float triples.

    psycopg 3 reads the column (record[]) as a list of tuples of strings, such as
    ('-inf', '1.0', '0'); a record it could not split arrives as its text "(t,se,sp)", and the
    whole array as text when its type is unknown to the driver. All three are accepted.
    """
    if isinstance(roc, str):
        points = RECORD.findall(roc)
    else:
        points = [RECORD.match(p).groups() if isinstance(p, str) else p for p in roc]
    return [tuple(float(field) for field in point) for point in points]


def volcano_figure(report: pd.DataFrame) -> go.Figure:
    """log2 fold change against -log10 q (p where q is missing), one point per biomarker."""
    q = report["mann_whitney_q"].fillna(report["mann_whitney_p"])
    significant = q < 0.05
    figure = go.Figure(
        go.Scatter(
            x=report["log2_fold_change"].tolist(),
            y=[-math.log10(max(value, SMALLEST_P)) for value in q],
            mode="markers",
            text=report["biomarker"].tolist(),
            customdata=report["auc"].tolist(),
            hovertemplate=(
                "<b>%{text}</b><br>log2 fold change %{x:.3f}<br>-log10 q %{y:.2f}"
                "<br>AUC %{customdata:.3f}<extra></extra>"
            ),
            marker={"size": 10, "color": ["crimson" if s else "steelblue" for s in significant]},
        )
    )
    figure.add_hline(y=-math.log10(0.05), line_dash="dot", line_color="grey")
    figure.update_layout(
        title="Volcano: fold change and significance (red: q < 0.05)",
        xaxis_title="log2 fold change (cases / controls)",
        yaxis_title="-log10 Mann-Whitney q (BH)",
    )
    return figure


def roc_figure(biomarker: str, points: list[tuple[float, float, float]], auc: float) -> go.Figure:
    """1 - specificity against sensitivity, from (0, 0) to (1, 1), with the AUC in the title."""
    curve = sorted((1.0 - specificity, sensitivity, threshold)
                   for threshold, sensitivity, specificity in points)
    figure = go.Figure(
        go.Scatter(
            x=[fpr for fpr, _, _ in curve],
            y=[tpr for _, tpr, _ in curve],
            customdata=[format_number(threshold) for _, _, threshold in curve],
            mode="lines+markers",
            marker={"size": 4},
            hovertemplate=(
                "threshold %{customdata}<br>1 - specificity %{x:.3f}"
                "<br>sensitivity %{y:.3f}<extra></extra>"
            ),
            name=biomarker,
        )
    )
    figure.add_shape(type="line", x0=0, y0=0, x1=1, y1=1, line={"dash": "dot", "color": "grey"})
    figure.update_layout(
        title=f"ROC: {biomarker} (AUC = {auc!r})",
        height=600,
        xaxis={"title": "1 - specificity", "range": [-0.02, 1.02], "constrain": "domain"},
        yaxis={"title": "sensitivity", "range": [-0.02, 1.02], "scaleanchor": "x"},
    )
    return figure


def format_number(value: float) -> str:
    """A number as text, infinities spelled as SQL prints them ("Infinity", "-Infinity")."""
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return f"{value:.6g}"


def default_biomarker(report: pd.DataFrame) -> str | None:
    """The biomarker whose AUC is furthest from 0.5."""
    if report.empty:
        return None
    distance = (report["auc"] - 0.5).abs().fillna(-1.0)
    return report.loc[distance.idxmax(), "biomarker"]


def report_table(report: pd.DataFrame) -> dash_table.DataTable:
    """The report as a sortable table; infinite values (a Youden threshold of -Infinity) kept
    as text, since JSON has no infinity and would show them blank."""
    columns = [column_spec(name, report[name]) for name in report.columns]
    records = [{k: table_value(v) for k, v in row.items()} for row in report.to_dict("records")]
    return dash_table.DataTable(
        id="report",
        columns=columns,
        data=records,
        sort_action="native",
        page_size=25,
        style_table={"overflowX": "auto"},
    )


def table_value(value):
    """A report value for the table: infinities as text, everything else as is."""
    return format_number(value) if isinstance(value, float) and math.isinf(value) else value


def column_spec(name: str, values: pd.Series) -> dict:
    """A DataTable column: floats to 4 significant digits, counts and names as they are."""
    if pd.api.types.is_float_dtype(values):
        format_ = Format(precision=4, scheme=Scheme.decimal_or_exponent)
        return {"name": name, "id": name, "type": "numeric", "format": format_}
    if pd.api.types.is_numeric_dtype(values):
        return {"name": name, "id": name, "type": "numeric"}
    return {"name": name, "id": name}


def page(volcano: go.Figure, biomarkers: list[str], selected: str | None,
         table: dash_table.DataTable) -> html.Div:
    """The page: the volcano plot, the biomarker picker and its ROC curve, the report table."""
    return html.Div(
        [
            html.H1("Discern: discrimination report"),
            dcc.Graph(id="volcano", figure=volcano),
            html.Label("Biomarker", htmlFor="biomarker"),
            dcc.Dropdown(id="biomarker", options=biomarkers, value=selected, clearable=False),
            dcc.Graph(id="roc"),
            table,
        ],
        style={"maxWidth": "1500px", "margin": "auto", "fontFamily": "sans-serif"},
    )


def create_app(dsn: str | None = None, report_sql: Path | None = None) -> Dash:
    """The dashboard, reading from `dsn` (default: $DISCERN_DSN) and running `report_sql`
    (default: $DISCERN_REPORT_SQL, else this repository's discrimination report)."""
    engine = make_engine(os.environ.get("DISCERN_DSN", "") if dsn is None else dsn)
    sql_path = report_sql or Path(os.environ.get("DISCERN_REPORT_SQL", DEFAULT_REPORT_SQL))
    app = Dash(__name__, title="Discern: discrimination report")

    def serve_layout():
        report = load_report(engine, sql_path)
        return page(
            volcano_figure(report),
            report["biomarker"].tolist(),
            default_biomarker(report),
            report_table(report),
        )

    # Dash checks a layout function's ids against the callbacks by calling it when it is set,
    # unless a validation layout is given: the empty page, so that needs no server.
    app.validation_layout = page(go.Figure(), [], None, dash_table.DataTable(id="report"))
    app.layout = serve_layout

    @app.callback(Output("roc", "figure"), Input("biomarker", "value"))
    def update_roc(biomarker):
        if biomarker is None:
            return go.Figure(layout={"title": "ROC: pick a biomarker"})
        points, auc = load_roc(engine, biomarker)
        return roc_figure(biomarker, points, auc)

    return app


app = create_app()
server = app.server

if __name__ == "__main__":
    app.run(
        host=os.environ.get("DASH_HOST", "127.0.0.1"),
        port=int(os.environ.get("DASH_PORT", "8050")),
    )

//! Shared pieces of the functions' documentation (shown by `SHOW FUNCTIONS` and
//! `information_schema.routines`).

use datafusion::logical_expr::{DocSection, DocumentationBuilder};

/// The section every Discern function is listed under.
pub const SECTION: DocSection = DocSection {
    include: true,
    label: "Case-control statistics",
    description: Some("Discern's statistical functions for case-control studies"),
};

/// A documentation builder with the description, the syntax and a runnable SQL example.
pub fn doc(
    section: DocSection,
    description: &str,
    syntax: &str,
    sql_example: &str,
) -> DocumentationBuilder {
    datafusion::logical_expr::Documentation::builder(section, description, syntax)
        .with_sql_example(format!("```sql\n{sql_example}\n```"))
}

//! Every function of the catalog is registered once and documented: `SHOW FUNCTIONS` and
//! `information_schema.routines` describe it (DataFusion fills them from the documentation).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use datafusion::arrow::array::AsArray;
use datafusion::prelude::{SessionConfig, SessionContext};

#[tokio::test]
async fn every_function_is_documented_in_information_schema() {
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_information_schema(true));
    discern_udfs::register_all(&ctx).unwrap();
    let mut names = BTreeSet::new();
    let scalar = discern_udfs::all_scalar_functions();
    let aggregate = discern_udfs::all_aggregate_functions();
    let window = discern_udfs::all_window_functions();
    let docs = scalar
        .iter()
        .map(|f| (f.name().to_string(), f.documentation().cloned()))
        .chain(
            aggregate
                .iter()
                .map(|f| (f.name().to_string(), f.documentation().cloned())),
        )
        .chain(
            window
                .iter()
                .map(|f| (f.name().to_string(), f.documentation().cloned())),
        );
    for (name, doc) in docs {
        assert!(names.insert(name.clone()), "{name} is registered twice");
        let doc = doc.unwrap_or_else(|| panic!("{name} has no documentation"));
        assert!(doc.description.len() > 40, "{name}: description too short");
        assert!(
            doc.syntax_example.starts_with(&name),
            "{name}: syntax {}",
            doc.syntax_example
        );
        let example = doc.sql_example.unwrap_or_default();
        assert!(
            example.contains(&name),
            "{name}: the SQL example does not call it"
        );
        assert!(
            doc.arguments.is_some_and(|a| !a.is_empty()),
            "{name}: arguments undocumented"
        );
    }
    let batches = ctx
        .sql("SELECT DISTINCT routine_name FROM information_schema.routines WHERE description IS NOT NULL")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let listed: BTreeSet<String> = batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_string::<i32>()
                .iter()
                .flatten()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    for name in &names {
        assert!(
            listed.contains(name),
            "{name} missing from information_schema.routines"
        );
    }
}

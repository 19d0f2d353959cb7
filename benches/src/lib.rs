//! Benchmarks live in `benches/`; this library holds what several of them
//! share.

/// The PostgreSQL server the benchmarks also measure, when this variable
/// names one (`eval "$(./scripts/postgres up | tail -1)"` prints a URL to
/// give it).
pub const POSTGRES_URL_VAR: &str = "MAESTRO_BENCH_POSTGRES_URL";

/// A fresh, empty schema `name` on the server at `base`, and the URL that
/// works in it. The schema is dropped first if it exists.
pub fn fresh_postgres_schema(base: &str, name: &str) -> String {
    let mut admin = postgres::Client::connect(base, postgres::NoTls)
        .unwrap_or_else(|e| panic!("connecting to {base}: {e}"));
    admin
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
        ))
        .unwrap_or_else(|e| panic!("creating schema {name}: {e}"));
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{name}")
}

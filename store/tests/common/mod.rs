#![allow(dead_code)] // Each test crate that includes this module uses part of it.

//! A PostgreSQL database for one test: a schema of its own on the server
//! named by `MAESTRO_STORE_TEST_POSTGRES_URL`, so tests run in parallel
//! without seeing each other's tables. The schema is dropped at the end.

use maestro_store::PostgresKv;

pub const URL_VAR: &str = "MAESTRO_STORE_TEST_POSTGRES_URL";

/// The server's URL. Without one the test fails (a skipped test would pass
/// unnoticed): the message says how to start one.
pub fn server_url() -> String {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "{URL_VAR} is not set: the PostgreSQL tests need a server; start one with \
             `eval \"$(./scripts/postgres up | tail -1)\"` (and `./scripts/postgres down` after)"
        ),
    }
}

pub struct TestDb {
    pub schema: String,
    /// Connects into the schema, as the test's own application name.
    pub url: String,
}

impl TestDb {
    /// A fresh, empty schema for the test `name` (unique in this process).
    pub fn new(name: &str) -> TestDb {
        let base = server_url();
        let name: String = name.chars().take(48).collect();
        let schema = format!("{name}_{}", std::process::id());
        let mut admin = connect(&base);
        admin
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
            ))
            .unwrap_or_else(|e| panic!("creating schema {schema}: {e:?}"));
        let url = in_schema(&base, &schema);
        TestDb { schema, url }
    }

    pub fn kv(&self) -> PostgresKv {
        PostgresKv::connect(&self.url).unwrap_or_else(|e| panic!("connecting: {e}"))
    }

    /// A plain client in the schema, to look at or tamper with the table.
    pub fn admin(&self) -> postgres::Client {
        connect(&self.url)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut admin) = postgres::Client::connect(&server_url(), postgres::NoTls) {
            let _ = admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
        }
    }
}

pub fn connect(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls)
        .unwrap_or_else(|e| panic!("connecting to the test server ({URL_VAR}): {e:?}"))
}

/// `base` with the schema as search path and application name, in either
/// form of connection string.
fn in_schema(base: &str, schema: &str) -> String {
    if base.contains("://") {
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}options=-c%20search_path%3D{schema}&application_name={schema}")
    } else {
        format!("{base} options='-c search_path={schema}' application_name={schema}")
    }
}

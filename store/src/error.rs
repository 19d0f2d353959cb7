use std::path::PathBuf;

#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database at {}: {cause}", path.display())]
    Open { path: PathBuf, cause: String },
    #[error("corrupt record in tree {tree}, key {key}: {cause}")]
    Corrupt {
        tree: &'static str,
        key: String,
        cause: String,
    },
    #[error(
        "record in tree {tree}, key {key} has format version {found}; this build reads version {supported}"
    )]
    UnsupportedFormat {
        tree: &'static str,
        key: String,
        found: u8,
        supported: u8,
    },
    #[error("cannot encode a {what} record: {cause}")]
    Encode { what: &'static str, cause: String },
    #[error("database error: {0}")]
    Io(String),
    /// A PostgreSQL call failed: what the store was doing, and the client's
    /// or the server's message.
    #[error("PostgreSQL: cannot {operation}: {cause}")]
    Postgres {
        operation: &'static str,
        cause: String,
    },
    /// A flush was refused because another worker took the leader lease:
    /// this process's epoch is no longer the current one, so it must not
    /// write (see `PostgresLease`).
    #[error(
        "fenced: this worker led at epoch {epoch}, but the leader lease is now at {}; another worker took over",
        current.map_or_else(|| "no epoch".to_string(), |c| format!("epoch {c}"))
    )]
    Fenced { epoch: i64, current: Option<i64> },
    /// An import named a scheduler the store already holds.
    #[error("scheduler {0} is already stored")]
    Exists(String),
}

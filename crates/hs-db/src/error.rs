//! The crate's error type: every refusal and failure a caller can see, each saying what is
//! wrong and, for refusals, what the operator should do.

/// Errors from opening, migrating and querying the database.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The SQLite file or its directory could not be prepared.
    #[error("preparing SQLite database at {path}: {source}")]
    Io {
        /// The database path.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Connecting to the database failed.
    #[error("connecting to the {backend} database: {message}")]
    Connect {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// What the driver said.
        message: String,
    },
    /// A query failed.
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    /// Running the embedded migrations failed.
    #[error("running database migrations: {0}")]
    Migration(String),
    /// A Go Headscale database older than the oldest schema we can import.
    #[error(
        "this database was written by a Go Headscale older than 0.25 (migration {missing} was never applied); \
         upgrade it with Go Headscale 0.25.1 or later first, then point this server at it"
    )]
    TooOld {
        /// The baseline migration id it lacks.
        missing: String,
    },
    /// A Go Headscale database with migrations we do not know.
    #[error(
        "this database has Go Headscale migrations this server does not know ({ids}); it was written by a newer \
         Headscale. Upgrade headscale-rs, or restore a backup taken before that upgrade"
    )]
    NewerGo {
        /// The unknown migration ids, comma separated.
        ids: String,
    },
    /// A database migrated by a newer headscale-rs.
    #[error(
        "this database was migrated by a newer headscale-rs (schema versions {versions} are unknown here); \
         run that newer version, or restore a backup taken before the upgrade"
    )]
    NewerOurs {
        /// The unknown schema versions, comma separated.
        versions: String,
    },
    /// A database that holds tables but no migration history we recognise.
    #[error(
        "the database holds tables ({tables}) but no Headscale migration history; refusing to touch it. \
         Point the server at an empty database or a Headscale database"
    )]
    Unrecognised {
        /// Some of the tables found.
        tables: String,
    },
    /// A stored value could not be decoded.
    #[error("bad value in {table}.{column} (row id {id}): {message}")]
    Corrupt {
        /// Table name.
        table: &'static str,
        /// Column name.
        column: &'static str,
        /// Row id.
        id: i64,
        /// What is wrong.
        message: String,
    },
    /// A uniqueness rule was violated (e.g. a user name that exists).
    #[error("already exists: {0}")]
    Conflict(String),
    /// The row to change does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// No free address is left in a configured prefix.
    #[error("no free IP address left in {0}")]
    PrefixExhausted(ipnet::IpNet),
    /// Invalid configuration handed to [`crate::Db::open`] or the allocator.
    #[error("invalid database configuration: {0}")]
    Config(String),
    /// Hashing a secret failed.
    #[error("hashing a secret: {0}")]
    Hash(String),
}

impl Error {
    /// Why the database cannot take writes right now, when that is the cause and retrying
    /// later can succeed: it cannot be reached, another process holds its lock, or its disk
    /// is full. `None` for errors a retry will not cure.
    pub fn unavailable_reason(&self) -> Option<&'static str> {
        let message = match self {
            Error::Connect { .. } => return Some("the database cannot be reached"),
            Error::Query(diesel::result::Error::DatabaseError(_, info)) => info.message(),
            Error::Query(diesel::result::Error::BrokenTransactionManager) => {
                return Some("the database connection was lost");
            }
            _ => return None,
        };
        // The drivers' own wording (SQLite's result-code strings, PostgreSQL's messages).
        let m = message.to_ascii_lowercase();
        if m.contains("database is locked") || m.contains("database table is locked") {
            Some("the database is locked by another process")
        } else if m.contains("disk is full") || m.contains("no space left on device") {
            Some("the disk holding the database is full")
        } else if m.contains("server closed the connection")
            || m.contains("terminating connection")
            || m.contains("connection to server")
        {
            Some("the database connection was lost")
        } else {
            None
        }
    }

    /// Maps unique-constraint violations to [`Error::Conflict`] with `what` as context.
    pub(crate) fn conflict_as(e: diesel::result::Error, what: impl FnOnce() -> String) -> Self {
        match e {
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            ) => Error::Conflict(what()),
            other => Error::Query(other),
        }
    }
}

/// The crate's result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! `[schema]` configuration.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchemaConfig {
    /// Longest a schema change waits for a table lock before giving up with nothing
    /// applied, so DDL never queues production traffic behind it for long.
    pub lock_timeout_ms: u64,
}

impl Default for SchemaConfig {
    fn default() -> Self {
        Self {
            lock_timeout_ms: 5000,
        }
    }
}

//! Galley's Prometheus metrics. One [`Metrics`] per running instance holds its own
//! registry (so two instances in one process, as in tests, never share a count) and every
//! family the other crates report to. Labels are bounded by construction: route
//! templates (never raw paths), methods, status classes, error codes, event names.

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Latency buckets in seconds: 1 ms to 10 s.
const SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub struct Metrics {
    registry: Registry,
    /// Count and time every HTTP request (`metrics.request_metrics`; off only to measure
    /// what it costs).
    pub track_requests: bool,
    /// `galley_http_requests_total{method, route, status}`; status is the class, `2xx`.
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub http_in_flight: IntGauge,
    /// 1 when `/health/ready` would answer 200; set at scrape.
    pub ready: IntGauge,
    /// `galley_db_pool_connections{pool, state}`: `size`, `idle`, `waiting`; set at scrape.
    pub pool_connections: IntGaugeVec,
    pub pool_acquire: HistogramVec,
    /// `galley_db_query_duration_seconds{kind}`: `read`, `write`, `rpc`, `ddl`.
    pub query_duration: HistogramVec,
    /// `galley_db_batches_total{count}`: `batches` the request pool sent, and the
    /// `requests` they carried (their ratio is the mean batch); brought up to date at
    /// scrape.
    pub db_batches: IntCounterVec,
    /// `galley_errors_total{code}`: the `code` of every error response.
    pub errors: IntCounterVec,
    /// `galley_auth_events_total{event}`.
    pub auth_events: IntCounterVec,
    /// Mail waiting in the outbox, and the age of the oldest; set at scrape.
    pub outbox_pending: IntGauge,
    pub outbox_oldest_seconds: Gauge,
    /// `galley_mail_sends_total{outcome}`: `sent`, `failed`.
    pub mail_sends: IntCounterVec,
    /// `galley_schema_changes_total{outcome}`: `applied`, `dry_run`, `refused`, `failed`.
    pub schema_changes: IntCounterVec,
    pub schema_change_duration: Histogram,
    /// Seconds since the newest backup in `backup.dir` was taken, by target (`local`).
    pub backup_age_seconds: GaugeVec,
    /// Scheduled backups this instance ran, by outcome (`succeeded`, `failed`).
    pub backup_runs: IntCounterVec,
    /// How long this instance's last scheduled backup took, and how big it was.
    pub backup_last_duration_seconds: Gauge,
    pub backup_last_size_bytes: Gauge,
    /// Open realtime WebSocket connections, and the channels they have joined.
    pub realtime_connections: IntGauge,
    pub realtime_channels: IntGauge,
    /// `galley_realtime_messages_total{direction, kind}`: messages from clients (`in`:
    /// `join`, `broadcast`, `presence`, `heartbeat`, ..., `malformed`) and frames queued
    /// for them (`out`: `reply`, `broadcast`, `presence`, `system`, `close`).
    pub realtime_messages: IntCounterVec,
    /// `galley_storage_bytes_total{direction}`: object bytes stored (`in`) and served
    /// (`out`).
    pub storage_bytes: IntCounterVec,
    /// `galley_storage_objects_total{event}`: objects `stored` and `removed`.
    pub storage_objects: IntCounterVec,
    /// Seconds from a row's change to its `postgres_changes` frame being queued for the
    /// subscribers (once per delivered change).
    pub realtime_delivery_lag: Histogram,
}

impl Metrics {
    pub fn new(version: &str) -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let family = IntCounterVec::new(Opts::new(name, help), labels)
                .expect("a valid counter definition");
            registry
                .register(Box::new(family.clone()))
                .expect("each family registers once");
            family
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            let family = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(SECONDS.to_vec()),
                labels,
            )
            .expect("a valid histogram definition");
            registry
                .register(Box::new(family.clone()))
                .expect("each family registers once");
            family
        };
        let http_requests = counter(
            "galley_http_requests_total",
            "HTTP requests served, by method, route template and status class.",
            &["method", "route", "status"],
        );
        let http_duration = histogram(
            "galley_http_request_duration_seconds",
            "Time to answer an HTTP request, by method, route template and status class.",
            &["method", "route", "status"],
        );
        let http_in_flight = IntGauge::new(
            "galley_http_requests_in_flight",
            "HTTP requests being served now.",
        )
        .expect("a valid gauge");
        registry
            .register(Box::new(http_in_flight.clone()))
            .expect("registers once");
        let ready = IntGauge::new(
            "galley_ready",
            "1 when this instance is ready to serve (database reachable and migrated), else 0.",
        )
        .expect("a valid gauge");
        registry
            .register(Box::new(ready.clone()))
            .expect("registers once");
        let pool_connections = IntGaugeVec::new(
            Opts::new(
                "galley_db_pool_connections",
                "Database pool connections by pool (api, owner) and state (size, idle, waiting).",
            ),
            &["pool", "state"],
        )
        .expect("a valid gauge");
        registry
            .register(Box::new(pool_connections.clone()))
            .expect("registers once");
        let pool_acquire = histogram(
            "galley_db_pool_acquire_seconds",
            "Time waited for a database connection, by pool.",
            &["pool"],
        );
        let query_duration = histogram(
            "galley_db_query_duration_seconds",
            "Time a request's statement took, by kind (read, write, rpc, ddl).",
            &["kind"],
        );
        let db_batches = counter(
            "galley_db_batches_total",
            "Batches of read requests sent down one database connection together (count=batches), and the requests in them (count=requests).",
            &["count"],
        );
        let errors = counter(
            "galley_errors_total",
            "Error responses by error code.",
            &["code"],
        );
        let auth_events = counter(
            "galley_auth_events_total",
            "Auth events: signup, login_success, login_failure, refresh, refresh_token_reuse, rate_limited, slowed.",
            &["event"],
        );
        let outbox_pending =
            IntGauge::new("galley_mail_outbox_pending", "Mail waiting to be sent.")
                .expect("a valid gauge");
        registry
            .register(Box::new(outbox_pending.clone()))
            .expect("registers once");
        let outbox_oldest_seconds = Gauge::new(
            "galley_mail_outbox_oldest_pending_seconds",
            "Age of the oldest mail waiting to be sent (0 when none).",
        )
        .expect("a valid gauge");
        registry
            .register(Box::new(outbox_oldest_seconds.clone()))
            .expect("registers once");
        let mail_sends = counter(
            "galley_mail_sends_total",
            "Attempts to send mail by outcome (sent, failed).",
            &["outcome"],
        );
        let schema_changes = counter(
            "galley_schema_changes_total",
            "Schema changes by outcome (applied, dry_run, refused, failed).",
            &["outcome"],
        );
        let schema_change_duration = Histogram::with_opts(
            HistogramOpts::new(
                "galley_schema_change_duration_seconds",
                "Time a schema change took, checks included.",
            )
            .buckets(SECONDS.to_vec()),
        )
        .expect("a valid histogram");
        registry
            .register(Box::new(schema_change_duration.clone()))
            .expect("registers once");
        let backup_age_seconds = GaugeVec::new(
            Opts::new(
                "galley_backup_age_seconds",
                "Seconds since the last successful backup, by target.",
            ),
            &["target"],
        )
        .expect("a valid gauge");
        registry
            .register(Box::new(backup_age_seconds.clone()))
            .expect("registers once");
        let backup_runs = IntCounterVec::new(
            Opts::new(
                "galley_backup_runs_total",
                "Scheduled backups this instance ran, by outcome.",
            ),
            &["outcome"],
        )
        .expect("a valid counter");
        registry
            .register(Box::new(backup_runs.clone()))
            .expect("registers once");
        for outcome in ["succeeded", "failed"] {
            backup_runs.with_label_values(&[outcome]);
        }
        let backup_last_duration_seconds = Gauge::new(
            "galley_backup_last_duration_seconds",
            "How long this instance's last scheduled backup took.",
        )
        .expect("a valid gauge");
        registry
            .register(Box::new(backup_last_duration_seconds.clone()))
            .expect("registers once");
        let backup_last_size_bytes = Gauge::new(
            "galley_backup_last_size_bytes",
            "The size of this instance's last scheduled backup.",
        )
        .expect("a valid gauge");
        registry
            .register(Box::new(backup_last_size_bytes.clone()))
            .expect("registers once");
        let build_info = IntGaugeVec::new(
            Opts::new("galley_build_info", "Always 1; the version is a label."),
            &["version"],
        )
        .expect("a valid gauge");
        build_info.with_label_values(&[version]).set(1);
        registry
            .register(Box::new(build_info))
            .expect("registers once");
        let gauge = |name: &str, help: &str| {
            let gauge = IntGauge::new(name, help).expect("a valid gauge");
            registry
                .register(Box::new(gauge.clone()))
                .expect("registers once");
            gauge
        };
        let realtime_connections = gauge(
            "galley_realtime_connections",
            "Realtime WebSocket connections open on this instance.",
        );
        let realtime_channels = gauge(
            "galley_realtime_channels",
            "Realtime channels joined on this instance.",
        );
        let realtime_messages = counter(
            "galley_realtime_messages_total",
            "Realtime messages received from clients (in) and frames queued for them (out), by kind.",
            &["direction", "kind"],
        );
        let storage_bytes = counter(
            "galley_storage_bytes_total",
            "Object bytes stored (in) and served (out) by storage.",
            &["direction"],
        );
        let storage_objects = counter(
            "galley_storage_objects_total",
            "Storage objects stored and removed.",
            &["event"],
        );
        let realtime_delivery_lag = Histogram::with_opts(
            HistogramOpts::new(
                "galley_realtime_delivery_lag_seconds",
                "Time from a row's change to its postgres_changes frame being queued for subscribers.",
            )
            .buckets(SECONDS.to_vec()),
        )
        .expect("a valid histogram");
        registry
            .register(Box::new(realtime_delivery_lag.clone()))
            .expect("registers once");
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("registers once");
        // Known label values start at zero, so a rate over them exists from the first
        // scrape and an alert can compare against it.
        for pool in ["api", "owner"] {
            pool_acquire.with_label_values(&[pool]);
        }
        for kind in ["read", "write", "rpc", "ddl"] {
            query_duration.with_label_values(&[kind]);
        }
        for count in ["batches", "requests"] {
            db_batches.with_label_values(&[count]);
        }
        for event in [
            "signup",
            "login_success",
            "login_failure",
            "refresh",
            "refresh_token_reuse",
            "rate_limited",
            "slowed",
        ] {
            auth_events.with_label_values(&[event]);
        }
        for outcome in ["sent", "failed"] {
            mail_sends.with_label_values(&[outcome]);
        }
        for outcome in ["applied", "dry_run", "refused", "failed"] {
            schema_changes.with_label_values(&[outcome]);
        }
        for kind in ["join", "broadcast", "presence", "heartbeat", "malformed"] {
            realtime_messages.with_label_values(&["in", kind]);
        }
        for kind in [
            "reply",
            "broadcast",
            "presence",
            "system",
            "postgres_changes",
        ] {
            realtime_messages.with_label_values(&["out", kind]);
        }
        for direction in ["in", "out"] {
            storage_bytes.with_label_values(&[direction]);
        }
        for event in ["stored", "removed"] {
            storage_objects.with_label_values(&[event]);
        }
        Self {
            registry,
            track_requests: true,
            http_requests,
            http_duration,
            http_in_flight,
            ready,
            pool_connections,
            pool_acquire,
            query_duration,
            db_batches,
            errors,
            auth_events,
            outbox_pending,
            outbox_oldest_seconds,
            mail_sends,
            schema_changes,
            schema_change_duration,
            backup_age_seconds,
            backup_runs,
            backup_last_duration_seconds,
            backup_last_size_bytes,
            realtime_connections,
            realtime_channels,
            realtime_messages,
            realtime_delivery_lag,
            storage_bytes,
            storage_objects,
        }
    }

    /// Counts one auth event.
    pub fn auth_event(&self, event: &str) {
        self.auth_events.with_label_values(&[event]).inc();
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding metric families into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// `2xx`, `4xx`...: a status as a bounded label.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_render_with_their_names_and_labels() {
        let metrics = Metrics::new("1.2.3");
        metrics
            .http_requests
            .with_label_values(&["GET", "/rest/v1/{table}", "2xx"])
            .inc();
        metrics.auth_event("signup");
        let text = metrics.render();
        assert!(text.contains(
            "galley_http_requests_total{method=\"GET\",route=\"/rest/v1/{table}\",status=\"2xx\"} 1"
        ));
        assert!(text.contains("galley_auth_events_total{event=\"signup\"} 1"));
        assert!(text.contains("galley_build_info{version=\"1.2.3\"} 1"));
        assert!(text.contains("process_resident_memory_bytes"));
        assert_eq!(status_class(503), "5xx");
    }
}

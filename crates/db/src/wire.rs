//! The request pool's connections: PostgreSQL's extended query protocol spoken directly,
//! so a request's whole transaction is one pipeline with one `Sync`.
//!
//! tokio-postgres ends every statement with its own `Sync` and drives each connection
//! from a task of its own. For a REST request (`BEGIN`, the settings, the statement,
//! `COMMIT`) that meant four `Sync` groups: PostgreSQL flushed four answers, each one a
//! `send` and a wake-up of Galley's worker, and every statement was handed to the
//! connection task and its answer handed back. Here the task that holds the connection
//! writes the messages itself (`Parse` only the first time a connection sees a
//! statement, then `Bind` and `Execute` per statement) and reads the answers itself, and
//! the pipeline ends in one `Sync`: one `send` each way per request, which is also what
//! `pgbench`'s pipelined floor of the same transaction pays.
//!
//! Invariants:
//! - A connection is handed out again only when its last pipeline ended in
//!   `ReadyForQuery` outside any transaction ([`Connection::is_ready`]). A pipeline
//!   abandoned half way (the request's future dropped) or broken by I/O leaves it
//!   unusable, and the pool closes it: PostgreSQL rolls back whatever it had open.
//! - A statement that fails ends the transaction it was in before the error is returned:
//!   the connection sends `ROLLBACK` itself when PostgreSQL reports a failed transaction
//!   block, so no error leaves a transaction open for the next request.
//! - Statements are prepared under names of this connection (`g1`, `g2`, ...), at most
//!   [`STATEMENT_CACHE`] of them; the least recently used is closed, in the same
//!   pipeline, to make room. A `Parse` that a failure skipped or refused prepares
//!   nothing, and a `Close` that a failure skipped is sent again with the next pipeline.
//! - Parameters are sent as text with the type `text`; results come back as text.
//! - Buffers that a large result grew are dropped after the pipeline, not kept per
//!   connection.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::ops::Range;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use fallible_iterator::FallibleIterator;
use postgres_protocol::IsNull;
use postgres_protocol::authentication::{self, sasl};
use postgres_protocol::message::backend::{ErrorResponseBody, Message};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio_postgres::config::{Host, SslMode, TargetSessionAttrs};

use crate::error::{SqlState, classify_code};

/// How many prepared statements one connection keeps.
pub const STATEMENT_CACHE: usize = 256;
/// Buffers grown past this by one large answer are released once it is read.
const KEEP_BUFFER: usize = 64 * 1024;
const READ_CHUNK: usize = 8 * 1024;
/// PostgreSQL's OID of `text`: every parameter is declared and sent as text.
const TEXT_OID: u32 = 25;

/// What went wrong on a request connection.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// PostgreSQL refused a statement (or the login): its SQLSTATE, message and details.
    #[error("{0}")]
    Server(Box<ServerError>),
    #[error("talking to the database failed: {0}")]
    Io(#[from] io::Error),
    #[error("the database closed the connection")]
    Closed,
    #[error("the database sent an unexpected message: {0}")]
    Protocol(String),
    #[error("{0}")]
    Config(String),
    #[error("connecting to the database timed out")]
    Timeout,
    /// The pool gave no connection (none free in time, or closed).
    #[error("no database connection: {0}")]
    Pool(String),
}

impl WireError {
    /// The error PostgreSQL reported, if it was one.
    pub fn server(&self) -> Option<&ServerError> {
        match self {
            WireError::Server(err) => Some(err),
            _ => None,
        }
    }

    /// What the error means for the caller: a connection that failed is `Unavailable`.
    pub fn sql_state(&self) -> SqlState {
        match self {
            WireError::Server(err) => classify_code(&err.code),
            _ => SqlState::Unavailable,
        }
    }

    /// The same error again, for each of the requests one failure answers.
    pub fn duplicate(&self) -> Self {
        match self {
            WireError::Server(err) => WireError::Server(err.clone()),
            WireError::Io(err) => WireError::Io(io::Error::new(err.kind(), err.to_string())),
            WireError::Closed => WireError::Closed,
            WireError::Protocol(what) => WireError::Protocol(what.clone()),
            WireError::Config(what) => WireError::Config(what.clone()),
            WireError::Timeout => WireError::Timeout,
            WireError::Pool(what) => WireError::Pool(what.clone()),
        }
    }

    fn protocol(what: impl Into<String>) -> Self {
        WireError::Protocol(what.into())
    }
}

/// An `ErrorResponse`, its fields by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerError {
    pub severity: String,
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    pub schema: Option<String>,
    pub table: Option<String>,
    pub constraint: Option<String>,
}

impl ServerError {
    fn parse(body: &ErrorResponseBody) -> Result<Self, WireError> {
        let mut err = ServerError::default();
        let mut fields = body.fields();
        while let Some(field) = fields.next()? {
            let value = String::from_utf8_lossy(field.value_bytes()).into_owned();
            match field.type_() {
                // `V` is the untranslated severity; `S` the localised one.
                b'V' => err.severity = value,
                b'S' if err.severity.is_empty() => err.severity = value,
                b'C' => err.code = value,
                b'M' => err.message = value,
                b'D' => err.detail = Some(value),
                b'H' => err.hint = Some(value),
                b's' => err.schema = Some(value),
                b't' => err.table = Some(value),
                b'n' => err.constraint = Some(value),
                _ => {}
            }
        }
        Ok(err)
    }
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.severity, self.code, self.message)?;
        if let Some(detail) = &self.detail {
            write!(f, " (detail: {detail})")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        if let (Some(schema), Some(table)) = (&self.schema, &self.table) {
            write!(f, " (relation: {schema}.{table})")?;
        }
        if let Some(constraint) = &self.constraint {
            write!(f, " (constraint: {constraint})")?;
        }
        Ok(())
    }
}

impl From<ServerError> for WireError {
    fn from(err: ServerError) -> Self {
        WireError::Server(Box::new(err))
    }
}

/// One row of a result, its columns as text.
#[derive(Debug)]
pub struct Row {
    storage: Bytes,
    columns: Vec<Option<Range<usize>>>,
}

impl Row {
    fn new(storage: Bytes, columns: Vec<Option<Range<usize>>>) -> Self {
        Self { storage, columns }
    }

    /// Column `index` as text; `None` for SQL NULL (or a column the row does not have).
    pub fn text(&self, index: usize) -> Option<&str> {
        let range = self.columns.get(index)?.clone()?;
        // The connection's client_encoding is UTF8, so PostgreSQL only sends UTF-8.
        std::str::from_utf8(&self.storage[range]).ok()
    }
}

enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Socket {
    async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.write_all(buf).await,
            Socket::Unix(s) => s.write_all(buf).await,
        }
    }

    async fn read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.read_buf(buf).await,
            Socket::Unix(s) => s.read_buf(buf).await,
        }
    }

    fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.try_read_buf(buf),
            Socket::Unix(s) => s.try_read_buf(buf),
        }
    }
}

/// Where a connection is between pipelines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Outside any transaction, nothing in flight: may serve the next request.
    Idle,
    /// Inside a transaction the caller has yet to end.
    InTransaction,
    /// Messages sent whose answers are not all read, or the connection failed.
    Busy,
}

/// An answer still to come, in the order the messages went out.
enum Expect {
    /// The `Parse` of this SQL under this name.
    Parse {
        sql: Box<str>,
        name: String,
    },
    /// The `Parse` of a statement used once, unnamed.
    ParseUnnamed,
    Bind,
    Execute,
    /// The `Close` of this evicted name.
    Close(String),
    /// The `ReadyForQuery` that ends a group.
    Sync,
}

/// What a connection knows of a statement it is asked to run.
enum Known {
    /// Prepared, or being prepared by the group this statement joins.
    Prepared,
    /// Being prepared by an earlier group of this pipeline.
    Pending,
    New,
}

struct Prepared {
    name: String,
    /// Parameters declared at `Parse`: the same SQL bound with another number of them
    /// (a planned count's `EXPLAIN` with or without `limit`) is prepared anew.
    params: usize,
    last_used: u64,
    /// The group whose `Parse` prepares it, until PostgreSQL confirms it did.
    pending_in: Option<u64>,
}

/// One statement of a group: its SQL and its parameters (as text).
pub type Queued = (std::borrow::Cow<'static, str>, Vec<String>);

/// What one group (the statements up to a `Sync`) answered: each statement's rows, or
/// the error that ended it.
pub type GroupResult = Result<Vec<Vec<Row>>, WireError>;

/// A connection of the request pool, used by one task at a time.
pub struct Connection {
    socket: Socket,
    read: BytesMut,
    write: BytesMut,
    state: State,
    /// Answers still to come for what is queued or sent.
    expect: VecDeque<Expect>,
    statements: HashMap<Box<str>, Prepared>,
    /// Evicted names whose `Close` a failure skipped: closed at the next pipeline's start.
    to_close: Vec<String>,
    next_name: u64,
    uses: u64,
    /// Groups ended so far: a statement whose `Parse` is still unconfirmed is bound by
    /// name only in the group that parses it.
    group: u64,
    process_id: i32,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("process_id", &self.process_id)
            .field("state", &self.state)
            .field("statements", &self.statements.len())
            .finish()
    }
}

impl Connection {
    /// Opens a connection as `config` says (hosts in order, TCP or a Unix socket
    /// directory, the user's password by cleartext, MD5 or SCRAM-SHA-256), within the
    /// config's connect timeout.
    pub async fn connect(config: &tokio_postgres::Config) -> Result<Self, WireError> {
        if config.get_ssl_mode() == SslMode::Require {
            return Err(WireError::Config(
                "sslmode=require: Galley connects to PostgreSQL without TLS".to_owned(),
            ));
        }
        let hosts = config.get_hosts();
        if hosts.is_empty() {
            return Err(WireError::Config("the connection names no host".to_owned()));
        }
        // As libpq and tokio-postgres do: each host in turn, each within the timeout, the
        // next one after any failure.
        let mut failure = None;
        for index in 0..hosts.len() {
            let attempt = Self::connect_to(config, index);
            let attempt = match config.get_connect_timeout() {
                Some(timeout) => tokio::time::timeout(*timeout, attempt)
                    .await
                    .unwrap_or(Err(WireError::Timeout)),
                None => attempt.await,
            };
            match attempt {
                Ok(conn) => return Ok(conn),
                Err(err) => failure = Some(err),
            }
        }
        Err(failure.unwrap_or(WireError::Timeout))
    }

    async fn connect_to(config: &tokio_postgres::Config, index: usize) -> Result<Self, WireError> {
        let socket = open(config, index).await?;
        let mut conn = Connection {
            socket,
            read: BytesMut::with_capacity(READ_CHUNK),
            write: BytesMut::with_capacity(READ_CHUNK),
            state: State::Busy,
            expect: VecDeque::new(),
            statements: HashMap::new(),
            to_close: Vec::new(),
            next_name: 0,
            uses: 0,
            group: 0,
            process_id: 0,
        };
        conn.startup(config).await?;
        if config.get_target_session_attrs() == TargetSessionAttrs::ReadWrite {
            conn.push("SHOW transaction_read_only", &[])?;
            let results = conn.sync().await?;
            let read_only = results
                .first()
                .and_then(|rows| rows.first())
                .and_then(|row| row.text(0))
                != Some("off");
            if read_only {
                return Err(WireError::Config(
                    "target_session_attrs=read-write: the server is read-only".to_owned(),
                ));
            }
        }
        Ok(conn)
    }

    async fn startup(&mut self, config: &tokio_postgres::Config) -> Result<(), WireError> {
        let user = config
            .get_user()
            .ok_or_else(|| WireError::Config("the connection names no user".to_owned()))?;
        let mut params = vec![("client_encoding", "UTF8"), ("user", user)];
        if let Some(dbname) = config.get_dbname() {
            params.push(("database", dbname));
        }
        if let Some(options) = config.get_options() {
            params.push(("options", options));
        }
        if let Some(name) = config.get_application_name() {
            params.push(("application_name", name));
        }
        frontend::startup_message(params, &mut self.write)?;
        self.send().await?;
        self.authenticate(config, user).await?;
        loop {
            match self.next_message().await? {
                Message::BackendKeyData(body) => self.process_id = body.process_id(),
                Message::ParameterStatus(_) | Message::NoticeResponse(_) => {}
                Message::ReadyForQuery(_) => {
                    self.state = State::Idle;
                    return Ok(());
                }
                Message::ErrorResponse(body) => return Err(ServerError::parse(&body)?.into()),
                _ => return Err(WireError::protocol("during start-up")),
            }
        }
    }

    async fn authenticate(
        &mut self,
        config: &tokio_postgres::Config,
        user: &str,
    ) -> Result<(), WireError> {
        let password = || {
            config
                .get_password()
                .ok_or_else(|| WireError::Config("the server asks for a password".to_owned()))
        };
        match self.next_message().await? {
            Message::AuthenticationOk => return Ok(()),
            Message::AuthenticationCleartextPassword => {
                frontend::password_message(password()?, &mut self.write)?;
                self.send().await?;
            }
            Message::AuthenticationMd5Password(body) => {
                let hashed = authentication::md5_hash(user.as_bytes(), password()?, body.salt());
                frontend::password_message(hashed.as_bytes(), &mut self.write)?;
                self.send().await?;
            }
            Message::AuthenticationSasl(body) => {
                let mut mechanisms = body.mechanisms();
                let mut scram = false;
                while let Some(mechanism) = mechanisms.next()? {
                    scram |= mechanism == sasl::SCRAM_SHA_256;
                }
                if !scram {
                    return Err(WireError::Config(
                        "the server offers no SASL mechanism Galley speaks".to_owned(),
                    ));
                }
                // No TLS, so no channel binding to offer.
                let mut exchange =
                    sasl::ScramSha256::new(password()?, sasl::ChannelBinding::unsupported());
                frontend::sasl_initial_response(
                    sasl::SCRAM_SHA_256,
                    exchange.message(),
                    &mut self.write,
                )?;
                self.send().await?;
                match self.next_message().await? {
                    Message::AuthenticationSaslContinue(body) => exchange.update(body.data())?,
                    Message::ErrorResponse(body) => {
                        return Err(ServerError::parse(&body)?.into());
                    }
                    _ => return Err(WireError::protocol("during SCRAM authentication")),
                }
                frontend::sasl_response(exchange.message(), &mut self.write)?;
                self.send().await?;
                match self.next_message().await? {
                    Message::AuthenticationSaslFinal(body) => exchange.finish(body.data())?,
                    Message::ErrorResponse(body) => {
                        return Err(ServerError::parse(&body)?.into());
                    }
                    _ => return Err(WireError::protocol("during SCRAM authentication")),
                }
            }
            Message::ErrorResponse(body) => return Err(ServerError::parse(&body)?.into()),
            _ => {
                return Err(WireError::Config(
                    "the server asks for an authentication method Galley does not speak".to_owned(),
                ));
            }
        }
        match self.next_message().await? {
            Message::AuthenticationOk => Ok(()),
            Message::ErrorResponse(body) => Err(ServerError::parse(&body)?.into()),
            _ => Err(WireError::protocol("after authentication")),
        }
    }

    /// The backend's process id, as `pg_backend_pid()` names it.
    pub fn process_id(&self) -> i32 {
        self.process_id
    }

    /// How many statements this connection counts as prepared on its session.
    pub fn prepared_statements(&self) -> usize {
        self.statements.len()
    }

    /// The bytes its read and write buffers hold on to between pipelines.
    pub fn buffer_capacity(&self) -> usize {
        self.read.capacity() + self.write.capacity()
    }

    /// Whether the connection may serve the next request: its last pipeline ended
    /// outside any transaction, and PostgreSQL has not closed it or said anything since
    /// (a server shutting down says `FATAL` and closes).
    pub fn is_ready(&mut self) -> bool {
        if self.state != State::Idle {
            return false;
        }
        // Nothing to read is the only good answer: end of file is a closed connection,
        // and anything unasked between pipelines (a notice, a FATAL before closing) leaves
        // it in a state not worth guessing at.
        let mut probe = BytesMut::new();
        matches!(
            self.socket.try_read_buf(&mut probe),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock
        )
    }

    /// Queues one statement: its `Parse` if this connection has not prepared it yet,
    /// then `Bind` with `params` as text and `Execute`. Nothing is sent until
    /// [`Connection::sync`], [`Connection::flush`] or [`Connection::run_groups`].
    pub fn push(&mut self, sql: &str, params: &[&str]) -> Result<(), WireError> {
        self.push_with(sql, params)
    }

    /// Queues each of `statements` as [`Connection::push`] does (their parameters bound
    /// from the owned strings, nothing copied).
    pub fn push_all(&mut self, statements: &[Queued]) -> Result<(), WireError> {
        statements
            .iter()
            .try_for_each(|(sql, params)| self.push_with(sql, params))
    }

    fn push_with<P: AsRef<str>>(&mut self, sql: &str, params: &[P]) -> Result<(), WireError> {
        if self.state == State::Idle {
            self.state = State::Busy;
        }
        for name in std::mem::take(&mut self.to_close) {
            self.close(name)?;
        }
        self.uses += 1;
        let group = self.group;
        let known = match self.statements.get_mut(sql) {
            Some(prepared) if prepared.params == params.len() => {
                prepared.last_used = self.uses;
                match prepared.pending_in {
                    None => Known::Prepared,
                    Some(pending) if pending == group => Known::Prepared,
                    // Parsed by an earlier group of this pipeline, which may yet fail
                    // before its `Parse` runs: parsed again here, unnamed, so this
                    // group does not depend on another's fate.
                    Some(_) => Known::Pending,
                }
            }
            Some(_) => {
                if let Some(stale) = self.statements.remove(sql) {
                    self.close(stale.name)?;
                }
                Known::New
            }
            None => Known::New,
        };
        let types = || std::iter::repeat_n(TEXT_OID, params.len());
        let name = match known {
            Known::Prepared => &self.statements[sql].name,
            Known::Pending => {
                frontend::parse("", sql, types(), &mut self.write)?;
                self.expect.push_back(Expect::ParseUnnamed);
                ""
            }
            Known::New => {
                if self.statements.len() >= STATEMENT_CACHE {
                    self.evict()?;
                }
                self.next_name += 1;
                let name = format!("g{}", self.next_name);
                frontend::parse(&name, sql, types(), &mut self.write)?;
                self.expect.push_back(Expect::Parse {
                    sql: sql.into(),
                    name: name.clone(),
                });
                // Counted as prepared now, so a second use in this group binds the same
                // name; taken back if the Parse never completes.
                self.statements.insert(
                    sql.into(),
                    Prepared {
                        name,
                        params: params.len(),
                        last_used: self.uses,
                        pending_in: Some(group),
                    },
                );
                &self.statements[sql].name
            }
        };
        // Borrowed, not cloned: the cache and the write buffer are separate fields.
        frontend::bind(
            "",
            name,
            std::iter::empty(),
            params.iter(),
            |param, buf| {
                buf.extend_from_slice(param.as_ref().as_bytes());
                Ok(IsNull::No)
            },
            std::iter::empty(),
            &mut self.write,
        )
        .map_err(|err| match err {
            frontend::BindError::Conversion(err) => WireError::Config(err.to_string()),
            frontend::BindError::Serialization(err) => WireError::Io(err),
        })?;
        frontend::execute("", 0, &mut self.write)?;
        self.expect.push_back(Expect::Bind);
        self.expect.push_back(Expect::Execute);
        Ok(())
    }

    /// Ends the statements queued since the last group with a `Sync`: they are one
    /// transaction (an implicit one, unless they began their own), and a failure among
    /// them skips only the rest of them. Nothing is sent until [`Connection::run_groups`].
    pub fn end_group(&mut self) {
        frontend::sync(&mut self.write);
        self.expect.push_back(Expect::Sync);
        self.group += 1;
    }

    /// Closes the least recently used statement, in this pipeline, before the `Parse`
    /// that takes its place. It is never one an earlier group of this pipeline is still
    /// parsing (whose `Close` would fail with that group): a pipeline uses fewer
    /// statements than half the cache (a batch: 64 groups of 2), so the least recently
    /// used was last used before it.
    fn evict(&mut self) -> Result<(), WireError> {
        let Some(oldest) = self
            .statements
            .iter()
            .min_by_key(|(_, prepared)| prepared.last_used)
            .map(|(sql, _)| sql.clone())
        else {
            return Ok(());
        };
        match self.statements.remove(&oldest) {
            Some(prepared) => self.close(prepared.name),
            None => Ok(()),
        }
    }

    fn close(&mut self, name: String) -> Result<(), WireError> {
        frontend::close(b'S', &name, &mut self.write)?;
        self.expect.push_back(Expect::Close(name));
        Ok(())
    }

    /// Sends what is queued and a `Sync`, and reads every statement's rows. A statement
    /// that fails makes PostgreSQL skip the rest; its error is returned, with any
    /// transaction it was in already rolled back.
    pub async fn sync(&mut self) -> Result<Vec<Vec<Row>>, WireError> {
        self.end_group();
        let mut groups = self.run(false).await?;
        match (groups.pop(), groups.is_empty()) {
            (Some(last), true) => last,
            _ => Err(WireError::protocol("sync after groups of their own")),
        }
    }

    /// Sends what is queued and a `Flush`, and reads every statement's rows; the
    /// transaction stays open for more statements and, at last, a [`Connection::sync`].
    /// A statement that fails is answered as by `sync`.
    pub async fn flush(&mut self) -> Result<Vec<Vec<Row>>, WireError> {
        frontend::flush(&mut self.write);
        let mut groups = self.run(true).await?;
        match (groups.pop(), groups.is_empty()) {
            (Some(last), true) => last,
            _ => Err(WireError::protocol("flush after groups of their own")),
        }
    }

    /// Sends what is queued, every group ended by [`Connection::end_group`] (statements
    /// queued since the last one make a group of their own), and reads each group's
    /// answers: one result per group, in order. The outer error is the connection's own
    /// (I/O, protocol), after which it is not reused; PostgreSQL's errors are per group.
    /// A group must not leave a transaction open unless it is the last.
    pub async fn run_groups(&mut self) -> Result<Vec<GroupResult>, WireError> {
        if !matches!(self.expect.back(), None | Some(Expect::Sync)) {
            self.end_group();
        }
        self.run(false).await
    }

    async fn run(&mut self, flush: bool) -> Result<Vec<GroupResult>, WireError> {
        self.state = State::Busy;
        let results = self.exchange(flush).await;
        self.trim();
        results
    }

    async fn exchange(&mut self, flush: bool) -> Result<Vec<GroupResult>, WireError> {
        self.send().await?;
        let mut groups = Vec::new();
        let mut results = Vec::new();
        let mut rows = Vec::new();
        let mut failed: Option<ServerError> = None;
        loop {
            if self.expect.is_empty() {
                if flush && failed.is_none() && groups.is_empty() {
                    // Flushed, every answer read: the transaction goes on.
                    self.state = State::InTransaction;
                    groups.push(Ok(results));
                }
                return Ok(groups);
            }
            match self.next_message().await? {
                Message::ParseComplete => match self.expect.pop_front() {
                    Some(Expect::Parse { sql, name }) => {
                        if let Some(prepared) = self.statements.get_mut(&sql)
                            && prepared.name == name
                        {
                            prepared.pending_in = None;
                        }
                    }
                    Some(Expect::ParseUnnamed) => {}
                    _ => return Err(WireError::protocol("ParseComplete")),
                },
                Message::BindComplete => match self.expect.pop_front() {
                    Some(Expect::Bind) => {}
                    _ => return Err(WireError::protocol("BindComplete")),
                },
                Message::CloseComplete => match self.expect.pop_front() {
                    Some(Expect::Close(_)) => {}
                    _ => return Err(WireError::protocol("CloseComplete")),
                },
                Message::DataRow(body) => {
                    let columns = body.ranges().collect::<Vec<_>>().map_err(WireError::Io)?;
                    rows.push(Row::new(body.buffer_bytes().clone(), columns));
                }
                Message::CommandComplete(_) | Message::EmptyQueryResponse => {
                    match self.expect.pop_front() {
                        Some(Expect::Execute) => results.push(std::mem::take(&mut rows)),
                        _ => return Err(WireError::protocol("CommandComplete")),
                    }
                }
                Message::ErrorResponse(body) => {
                    failed = Some(ServerError::parse(&body)?);
                    rows.clear();
                    // PostgreSQL skips everything up to the group's Sync: what was
                    // expected will not come, Parses that did not complete prepared
                    // nothing, and Closes that did not run are sent again next time.
                    while let Some(expect) = self.expect.pop_front() {
                        match expect {
                            Expect::Sync => {
                                self.expect.push_front(Expect::Sync);
                                break;
                            }
                            Expect::Parse { sql, name } => {
                                if self.statements.get(&sql).is_some_and(|p| p.name == name) {
                                    self.statements.remove(&sql);
                                }
                            }
                            Expect::Close(name) => self.to_close.push(name),
                            Expect::ParseUnnamed | Expect::Bind | Expect::Execute => {}
                        }
                    }
                    if self.expect.is_empty() {
                        // Flushed without a Sync: end the transaction's failed part.
                        self.end_group();
                        self.send().await?;
                    }
                }
                Message::ReadyForQuery(body) => {
                    if !matches!(self.expect.pop_front(), Some(Expect::Sync)) {
                        return Err(WireError::protocol("ReadyForQuery before every answer"));
                    }
                    let last = self.expect.is_empty();
                    let mut group = match failed.take() {
                        Some(err) => Err(err.into()),
                        None => Ok(std::mem::take(&mut results)),
                    };
                    results.clear();
                    match body.status() {
                        // Until the last group has answered the connection stays Busy:
                        // dropped half way, it is not handed out again.
                        b'I' if last => self.state = State::Idle,
                        b'I' => {}
                        b'T' if last => self.state = State::InTransaction,
                        // A failed transaction block: end it, so the error leaves
                        // nothing open. Should that fail, the connection stays Busy
                        // (not reused) and the statement's own error still answers.
                        b'E' if last => {
                            if let Err(err) = self.rollback().await
                                && group.is_ok()
                            {
                                group = Err(err);
                            }
                        }
                        _ => {
                            return Err(WireError::protocol(
                                "a group left a transaction open before another",
                            ));
                        }
                    }
                    groups.push(group);
                }
                Message::NoticeResponse(_)
                | Message::ParameterStatus(_)
                | Message::NotificationResponse(_) => {}
                _ => return Err(WireError::protocol("in a pipeline's answers")),
            }
        }
    }

    async fn rollback(&mut self) -> Result<(), WireError> {
        frontend::query("ROLLBACK", &mut self.write)?;
        self.send().await?;
        loop {
            match self.next_message().await? {
                Message::ReadyForQuery(body) if body.status() == b'I' => {
                    self.state = State::Idle;
                    return Ok(());
                }
                Message::ReadyForQuery(_) => {
                    return Err(WireError::protocol("still in a transaction after ROLLBACK"));
                }
                Message::ErrorResponse(body) => {
                    return Err(ServerError::parse(&body)?.into());
                }
                _ => {}
            }
        }
    }

    async fn send(&mut self) -> Result<(), WireError> {
        let sent = self.socket.write_all(&self.write).await;
        self.write.clear();
        sent.map_err(WireError::Io)
    }

    async fn next_message(&mut self) -> Result<Message, WireError> {
        loop {
            if let Some(message) = Message::parse(&mut self.read)? {
                return Ok(message);
            }
            self.read.reserve(READ_CHUNK);
            if self.socket.read_buf(&mut self.read).await? == 0 {
                return Err(WireError::Closed);
            }
        }
    }

    /// Drops buffers one large answer or statement grew.
    fn trim(&mut self) {
        if self.read.is_empty() && self.read.capacity() > KEEP_BUFFER {
            self.read = BytesMut::with_capacity(READ_CHUNK);
        }
        if self.write.is_empty() && self.write.capacity() > KEEP_BUFFER {
            self.write = BytesMut::with_capacity(READ_CHUNK);
        }
    }
}

/// Opens a socket to `config`'s host number `index` (at its `hostaddr`, when given).
async fn open(config: &tokio_postgres::Config, index: usize) -> Result<Socket, WireError> {
    let ports = config.get_ports();
    let port = ports
        .get(index)
        .or_else(|| ports.first())
        .copied()
        .unwrap_or(5432);
    let socket = match (
        &config.get_hosts()[index],
        config.get_hostaddrs().get(index),
    ) {
        (Host::Tcp(_), Some(address)) => tcp(config, TcpStream::connect((*address, port)).await?)?,
        (Host::Tcp(name), None) => tcp(config, TcpStream::connect((name.as_str(), port)).await?)?,
        (Host::Unix(directory), _) => {
            Socket::Unix(UnixStream::connect(directory.join(format!(".s.PGSQL.{port}"))).await?)
        }
    };
    Ok(socket)
}

fn tcp(config: &tokio_postgres::Config, stream: TcpStream) -> Result<Socket, WireError> {
    stream.set_nodelay(true)?;
    if config.get_keepalives() {
        let mut keepalive = socket2::TcpKeepalive::new().with_time(config.get_keepalives_idle());
        if let Some(interval) = config.get_keepalives_interval() {
            keepalive = keepalive.with_interval(interval);
        }
        if let Some(retries) = config.get_keepalives_retries() {
            keepalive = keepalive.with_retries(retries);
        }
        socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive)?;
    }
    Ok(Socket::Tcp(stream))
}

/// Makes and checks the request pool's connections.
#[derive(Debug)]
pub struct Manager {
    config: tokio_postgres::Config,
}

impl Manager {
    pub fn new(config: tokio_postgres::Config) -> Self {
        Self { config }
    }
}

impl deadpool::managed::Manager for Manager {
    type Type = Connection;
    type Error = WireError;

    async fn create(&self) -> Result<Connection, WireError> {
        Connection::connect(&self.config).await
    }

    async fn recycle(
        &self,
        conn: &mut Connection,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<WireError> {
        if conn.is_ready() {
            Ok(())
        } else {
            Err(deadpool::managed::RecycleError::message(
                "left mid-transaction, or closed by the server",
            ))
        }
    }
}

pub type Pool = deadpool::managed::Pool<Manager>;
pub type Object = deadpool::managed::Object<Manager>;
pub type PoolError = deadpool::managed::PoolError<WireError>;

/// A pool of request connections of `size`, every wait, connect and check bounded by
/// `timeout`.
pub fn pool(config: tokio_postgres::Config, size: usize, timeout: Duration) -> Pool {
    Pool::builder(Manager::new(config))
        .max_size(size)
        .runtime(deadpool::Runtime::Tokio1)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .build()
        .expect("a pool with a runtime and timeouts always builds")
}

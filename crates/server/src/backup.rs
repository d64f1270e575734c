//! `galley backup`: a backup is a directory under `backup.dir` holding the database
//! (`pg_dump -Fc`, taken in one exported snapshot), the secrets a restored instance
//! needs for its keys and sessions to keep working, and a manifest (versions, sizes,
//! SHA-256 of every part, row counts per table, policies and grants, all as of that
//! snapshot), and with the local storage backend the stored objects those rows name
//! (`objects.tar`, see `objects`). Everything is written readable by its owner only.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Datelike, Utc};
use galley_db::PgTools;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::jwt_secret;

mod objects;
mod s3;

/// `[backup]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    /// Where backups go; `<data_dir>/backups` when unset.
    pub dir: Option<PathBuf>,
    /// `prune` keeps the newest backup of each of this many recent days...
    pub keep_daily: u32,
    /// ...and of each of this many recent ISO weeks.
    pub keep_weekly: u32,
    /// When a serving Galley takes a backup by itself: a cron pattern in UTC (`0 3 * * *`,
    /// or with a leading seconds field). With several instances, each scheduled moment is
    /// run by exactly one of them; `prune` follows each scheduled backup.
    pub schedule: Option<String>,
    /// Encrypt backups with this passphrase (age, scrypt); `verify` and `restore` need it.
    #[serde(serialize_with = "galley_auth::redact")]
    pub passphrase: Option<secrecy::SecretString>,
    /// Encrypt backups to this age recipient (`age1…`) instead: only the holder of its
    /// identity can read them.
    pub age_recipient: Option<String>,
    /// The age identity (`AGE-SECRET-KEY-1…`, as an age key file holds it, comments
    /// allowed) that `verify` and `restore` decrypt backups made for `age_recipient` with;
    /// give it as a file: `GALLEY_BACKUP_AGE_IDENTITY_FILE`.
    #[serde(serialize_with = "galley_auth::redact")]
    pub age_identity: Option<secrecy::SecretString>,
    /// Keep backups in this S3-compatible bucket (`s3://bucket` or `s3://bucket/prefix`)
    /// instead of in `dir`, which then only holds a backup while it is assembled,
    /// verified or restored.
    pub s3_url: Option<String>,
    /// The S3 API's address, for a service other than AWS (`https://minio.internal:9000`);
    /// an `http://` address is used without TLS.
    pub s3_endpoint: Option<String>,
    /// The bucket's region; `AWS_REGION` or `us-east-1` when unset.
    pub s3_region: Option<String>,
    /// Credentials; when unset, the standard `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY` (or, on AWS, the instance's or pod's role).
    pub s3_access_key_id: Option<String>,
    #[serde(serialize_with = "galley_auth::redact")]
    pub s3_secret_access_key: Option<secrecy::SecretString>,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            dir: None,
            keep_daily: 7,
            keep_weekly: 4,
            schedule: None,
            passphrase: None,
            age_recipient: None,
            age_identity: None,
            s3_url: None,
            s3_endpoint: None,
            s3_region: None,
            s3_access_key_id: None,
            s3_secret_access_key: None,
        }
    }
}

impl BackupConfig {
    /// How backups are sealed, from `passphrase` or `age_recipient` (not both).
    pub(crate) fn sealing(&self) -> anyhow::Result<Sealing> {
        match (&self.passphrase, &self.age_recipient) {
            (Some(_), Some(_)) => anyhow::bail!(
                "invalid configuration: backup.passphrase and backup.age_recipient are both set; keep one"
            ),
            (Some(passphrase), None) => Ok(Sealing::Passphrase(passphrase.clone())),
            (None, Some(recipient)) => recipient
                .trim()
                .parse::<age::x25519::Recipient>()
                .map(|recipient| Sealing::Recipient(Box::new(recipient)))
                .map_err(|err| {
                    anyhow::anyhow!("invalid configuration: backup.age_recipient: {err}")
                }),
            (None, None) => Ok(Sealing::None),
        }
    }

    /// The parsed `schedule`, if any.
    pub(crate) fn cron(&self) -> anyhow::Result<Option<croner::Cron>> {
        self.schedule
            .as_deref()
            .map(|pattern| {
                pattern.parse::<croner::Cron>().map_err(|err| {
                    anyhow::anyhow!("invalid configuration: backup.schedule `{pattern}`: {err}")
                })
            })
            .transpose()
    }
}

/// The total size of a backup's files.
pub(crate) fn size(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| entry.metadata().ok())
                .map(|meta| meta.len())
                .sum()
        })
        .unwrap_or(0)
}

/// The backup's dump as a plain file pg_restore can read: the part itself, or, for an
/// encrypted backup, a decrypted copy (0600, beside it) removed when the guard drops.
struct PlainDump {
    path: PathBuf,
    temporary: bool,
}

impl Drop for PlainDump {
    fn drop(&mut self) {
        if self.temporary {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn plain_dump(config: &Config, dir: &Path, manifest: &Manifest) -> anyhow::Result<PlainDump> {
    let Some(encryption) = &manifest.encryption else {
        return Ok(PlainDump {
            path: dir.join(DATABASE),
            temporary: false,
        });
    };
    let sealed = dir.join(format!("{DATABASE}.age"));
    let path = dir.join(format!(
        ".{DATABASE}.{}",
        hex::encode(rand::random::<[u8; 6]>())
    ));
    let mut reader = unseal(&config.backup, encryption, &sealed)?;
    let guard = PlainDump {
        path: path.clone(),
        temporary: true,
    };
    let mut file = create_private(&path)?;
    std::io::copy(&mut reader, &mut file)
        .with_context(|| format!("decrypting {}", sealed.display()))?;
    file.sync_all()?;
    Ok(guard)
}

fn read_secrets(config: &Config, dir: &Path, manifest: &Manifest) -> anyhow::Result<Secrets> {
    let bytes = match &manifest.encryption {
        None => fs::read(dir.join(SECRETS)).context("reading the backup's secrets")?,
        Some(encryption) => {
            let mut bytes = Vec::new();
            unseal(
                &config.backup,
                encryption,
                &dir.join(format!("{SECRETS}.age")),
            )?
            .read_to_end(&mut bytes)
            .context("decrypting the backup's secrets")?;
            bytes
        }
    };
    serde_json::from_slice(&bytes).context("reading the backup's secrets")
}

/// The backup's objects part, decrypted as it is read; `None` when it has none.
fn objects_part(
    config: &Config,
    dir: &Path,
    manifest: &Manifest,
) -> anyhow::Result<Option<Box<dyn Read + Send>>> {
    let Some(name) = manifest
        .parts
        .keys()
        .find(|file| file.starts_with(objects::OBJECTS))
    else {
        return Ok(None);
    };
    let path = dir.join(name);
    Ok(Some(match &manifest.encryption {
        None => Box::new(std::io::BufReader::new(
            fs::File::open(&path).with_context(|| format!("reading {}", path.display()))?,
        )),
        Some(encryption) => unseal(&config.backup, encryption, &path)?,
    }))
}

/// How a backup's parts are written: as they are, or encrypted with age.
pub(crate) enum Sealing {
    None,
    Passphrase(secrecy::SecretString),
    Recipient(Box<age::x25519::Recipient>),
}

impl Sealing {
    /// The manifest's name for it, and the suffix of the parts' file names.
    fn describe(&self) -> (Option<&'static str>, &'static str) {
        match self {
            Sealing::None => (None, ""),
            Sealing::Passphrase(_) => (Some("age-passphrase"), ".age"),
            Sealing::Recipient(_) => (Some("age-recipient"), ".age"),
        }
    }

    /// `out`, wrapped so that what is written to it is encrypted.
    fn seal<W: Write>(&self, out: W) -> anyhow::Result<Sealed<W>> {
        let encryptor = match self {
            Sealing::None => return Ok(Sealed::Plain(out)),
            Sealing::Passphrase(passphrase) => age::Encryptor::with_user_passphrase(
                age::secrecy::SecretString::from(passphrase.expose_secret().to_owned()),
            ),
            Sealing::Recipient(recipient) => age::Encryptor::with_recipients(std::iter::once(
                recipient.as_ref() as &dyn age::Recipient,
            ))
            .context("encrypting to backup.age_recipient")?,
        };
        Ok(Sealed::Age(
            encryptor
                .wrap_output(out)
                .context("starting the encryption")?,
        ))
    }
}

/// A writer that encrypts, or not.
enum Sealed<W: Write> {
    Plain(W),
    Age(age::stream::StreamWriter<W>),
}

impl<W: Write> Write for Sealed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sealed::Plain(out) => out.write(buf),
            Sealed::Age(out) => out.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sealed::Plain(out) => out.flush(),
            Sealed::Age(out) => out.flush(),
        }
    }
}

impl<W: Write> Sealed<W> {
    /// Ends the encryption (its last block and tag) and hands back the file.
    fn finish(self) -> std::io::Result<W> {
        match self {
            Sealed::Plain(out) => Ok(out),
            Sealed::Age(out) => out.finish(),
        }
    }
}

/// Opens an encrypted part with what the configuration holds.
fn unseal(
    config: &BackupConfig,
    encryption: &str,
    path: &Path,
) -> anyhow::Result<Box<dyn std::io::Read + Send>> {
    let file = fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let decryptor = age::Decryptor::new(std::io::BufReader::new(file))
        .with_context(|| format!("{} is not an age file", path.display()))?;
    let reader = match encryption {
        "age-passphrase" => {
            let passphrase = config.passphrase.as_ref().context(
                "this backup is encrypted with a passphrase: set backup.passphrase (GALLEY_BACKUP_PASSPHRASE_FILE)",
            )?;
            let identity = age::scrypt::Identity::new(age::secrecy::SecretString::from(
                passphrase.expose_secret().to_owned(),
            ));
            decryptor.decrypt(std::iter::once(&identity as &dyn age::Identity))
        }
        "age-recipient" => {
            let text = config.age_identity.as_ref().context(
                "this backup is encrypted to an age recipient: set backup.age_identity to its identity (GALLEY_BACKUP_AGE_IDENTITY_FILE)",
            )?;
            let identity = text
                .expose_secret()
                .lines()
                .map(str::trim)
                .find(|line| line.starts_with("AGE-SECRET-KEY-"))
                .and_then(|line| line.parse::<age::x25519::Identity>().ok())
                .context("backup.age_identity holds no age identity")?;
            decryptor.decrypt(std::iter::once(&identity as &dyn age::Identity))
        }
        other => anyhow::bail!("this backup's encryption `{other}` is unknown to this Galley"),
    }
    .map_err(|err| anyhow::anyhow!("cannot decrypt {}: {err}", path.display()))?;
    Ok(Box::new(reader))
}

const DATABASE: &str = "database.dump";
/// Every name a backup's part may have.
const PART_NAMES: [&str; 6] = [
    "database.dump",
    "database.dump.age",
    "secrets.json",
    "secrets.json.age",
    "objects.tar",
    "objects.tar.age",
];
const SECRETS: &str = "secrets.json";
const MANIFEST: &str = "manifest.json";
/// The schemas a backup counts and compares: the user's and Galley's own.
const SCHEMAS: [&str; 4] = ["public", "auth", "galley", "storage"];

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub(crate) name: String,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) galley_version: String,
    pub(crate) server_version: String,
    pub(crate) tools_version: String,
    /// `age-passphrase` or `age-recipient` when the parts are encrypted.
    #[serde(default)]
    pub(crate) encryption: Option<String>,
    /// Size and SHA-256 of each part, by file name.
    pub(crate) parts: BTreeMap<String, Part>,
    /// `schema.table` -> rows, as of the dump's snapshot.
    pub(crate) row_counts: BTreeMap<String, i64>,
    /// `schema.table.policy`, sorted.
    pub(crate) policies: Vec<String>,
    /// `role:privilege:schema.table` for the API roles, sorted.
    pub(crate) grants: Vec<String>,
    /// Stored objects: in the `objects.tar` part, or where they stay (S3); absent when
    /// storage is off or for backups older than storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) objects: Option<objects::ObjectsSummary>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Part {
    pub(crate) bytes: u64,
    pub(crate) sha256: String,
}

/// What a restore needs besides the database.
#[derive(Serialize, Deserialize)]
struct Secrets {
    jwt_secret: String,
    /// `kid` -> PEM of each configured signing key.
    signing_keys: BTreeMap<String, String>,
}

pub(crate) fn backup_dir(config: &Config) -> PathBuf {
    config
        .backup
        .dir
        .clone()
        .unwrap_or_else(|| config.data_dir().join("backups"))
}

/// Where backups are kept: a directory, or an S3-compatible bucket.
pub(crate) enum Destination {
    Dir(PathBuf),
    Bucket(s3::Bucket),
}

impl Destination {
    pub(crate) fn of(config: &Config) -> anyhow::Result<Self> {
        Ok(match s3::Bucket::from_config(&config.backup)? {
            Some(bucket) => Self::Bucket(bucket),
            None => Self::Dir(backup_dir(config)),
        })
    }

    /// The `target` label of `galley_backup_age_seconds`.
    pub(crate) fn target(&self) -> &'static str {
        match self {
            Self::Dir(_) => "local",
            Self::Bucket(_) => "s3",
        }
    }

    /// Where backup `name` is (or would be), for people.
    pub(crate) fn location(&self, name: &str) -> String {
        match self {
            Self::Dir(root) => root.join(name).display().to_string(),
            Self::Bucket(bucket) => bucket.location(name),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Dir(root) => root.display().to_string(),
            Self::Bucket(bucket) => bucket.location("").trim_end_matches('/').to_owned(),
        }
    }

    /// Every complete backup, newest first.
    pub(crate) async fn list(&self) -> anyhow::Result<Vec<Manifest>> {
        match self {
            Self::Dir(root) => {
                let root = root.clone();
                tokio::task::spawn_blocking(move || list_in(&root))
                    .await
                    .context("listing backups")?
            }
            Self::Bucket(bucket) => bucket.manifests().await,
        }
    }

    /// When the newest complete backup was taken.
    pub(crate) async fn newest(&self) -> anyhow::Result<Option<DateTime<Utc>>> {
        match self {
            Self::Dir(_) => Ok(self.list().await?.first().map(|m| m.created_at)),
            Self::Bucket(bucket) => bucket.newest().await,
        }
    }
}

/// A backup's name for a moment: sorts as the moments do.
fn name_at(at: DateTime<Utc>) -> String {
    format!("galley-{}", at.format("%Y%m%dT%H%M%S%.3fZ"))
}

/// The moment a backup's name records.
fn taken_at(name: &str) -> Option<DateTime<Utc>> {
    let stamp = name.strip_prefix("galley-")?;
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%S%.3fZ")
        .ok()
        .map(|at| at.and_utc())
}

/// A directory holding one backup's files; removed on drop when it is only a working
/// copy (a backup assembled for, or downloaded from, a bucket, or one cut short).
pub(crate) struct Local {
    pub(crate) dir: PathBuf,
    temporary: bool,
}

impl Local {
    fn keep(mut self) -> PathBuf {
        self.temporary = false;
        std::mem::take(&mut self.dir)
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        if self.temporary && !self.dir.as_os_str().is_empty() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Creates `root` (0700) if needed, and in it a new directory `name` (0700), removed on
/// drop unless kept.
fn private_dir(root: &Path, name: &str) -> anyhow::Result<Local> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .with_context(|| format!("creating {}", root.display()))?;
    let dir = root.join(name);
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    Ok(Local {
        dir,
        temporary: true,
    })
}

/// A new file readable by its owner only.
fn create_private(path: &Path) -> anyhow::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))
}

/// Writes `bytes` to a new file readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut file = create_private(path)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

fn part(path: &Path) -> anyhow::Result<Part> {
    let mut file = fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut hasher = Sha256::new();
    let bytes = std::io::copy(&mut file, &mut hasher)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(Part {
        bytes,
        sha256: hex::encode(hasher.finalize()),
    })
}

/// Row counts, policies and grants as the transaction `client` is in sees them.
async fn inventory(
    client: &impl galley_db::tokio_postgres::GenericClient,
) -> anyhow::Result<(BTreeMap<String, i64>, Vec<String>, Vec<String>)> {
    let tables = client
        .query(
            "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) \
             FROM pg_tables WHERE schemaname = ANY($1) ORDER BY 1",
            &[&SCHEMAS.to_vec()],
        )
        .await
        .context("listing tables")?;
    let mut counts = BTreeMap::new();
    for row in tables {
        let table: String = row.get(0);
        // The name comes from the catalog and is quoted by PostgreSQL itself.
        let count: i64 = client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .with_context(|| format!("counting {table}"))?
            .get(0);
        counts.insert(table, count);
    }
    let policies = client
        .query(
            "SELECT schemaname || '.' || tablename || '.' || policyname FROM pg_policies \
             WHERE schemaname = ANY($1) ORDER BY 1",
            &[&SCHEMAS.to_vec()],
        )
        .await
        .context("listing policies")?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let grants = client
        .query(
            "SELECT grantee || ':' || privilege_type || ':' || table_schema || '.' || table_name \
             FROM information_schema.role_table_grants \
             WHERE table_schema = ANY($1) AND grantee IN ('anon', 'authenticated', 'service_role') \
             ORDER BY 1",
            &[&SCHEMAS.to_vec()],
        )
        .await
        .context("listing grants")?
        .iter()
        .map(|row| row.get(0))
        .collect();
    Ok((counts, policies, grants))
}

/// Refuses a role that row-level security binds: Galley's tables force it even on their
/// owner, so `pg_dump` would stop at the first table with rows (and `pg_restore` could
/// not load them).
async fn require_bypass(client: &galley_db::tokio_postgres::Client) -> anyhow::Result<()> {
    let row = client
        .query_one(
            "SELECT current_user::text, rolsuper OR rolbypassrls FROM pg_roles \
             WHERE rolname = current_user",
            &[],
        )
        .await
        .context("reading the connecting role's attributes")?;
    let (role, bypasses): (String, bool) = (row.get(0), row.get(1));
    if !bypasses {
        anyhow::bail!(
            "backups need a role that bypasses row-level security, since Galley's tables \
             force it even on their owner; as a superuser run `ALTER ROLE {role} BYPASSRLS`, \
             or run `galley backup` with a superuser's --database-url"
        );
    }
    Ok(())
}

async fn connect(
    target: &galley_db::tokio_postgres::Config,
) -> anyhow::Result<galley_db::tokio_postgres::Client> {
    let (client, connection) = target
        .connect(galley_db::tokio_postgres::NoTls)
        .await
        .context("connecting to PostgreSQL")?;
    tokio::spawn(connection);
    Ok(client)
}

/// A backup `create` took.
pub(crate) struct Created {
    pub(crate) name: String,
    /// Where it is: its directory, or its address in the bucket.
    pub(crate) location: String,
    /// The size of its files.
    pub(crate) bytes: u64,
}

/// `galley backup create`: takes a backup into the configured destination. A backup cut
/// short leaves nothing behind.
pub(crate) async fn create(
    config: &Config,
    target: galley_db::tokio_postgres::Config,
) -> anyhow::Result<Created> {
    let destination = Destination::of(config)?;
    let created_at = Utc::now();
    let name = name_at(created_at);
    let local = private_dir(&backup_dir(config), &name)?;
    let manifest = assemble(config, target, &local.dir, name.clone(), created_at).await?;
    let bytes = size(&local.dir);
    match &destination {
        Destination::Dir(_) => {
            local.keep();
        }
        // The working copy goes when `local` drops, uploaded or not.
        Destination::Bucket(bucket) => bucket.upload(&local.dir, &manifest).await?,
    }
    Ok(Created {
        location: destination.location(&name),
        name,
        bytes,
    })
}

/// Writes backup `name` into `dir`: the dump, the secrets, and the manifest last.
async fn assemble(
    config: &Config,
    target: galley_db::tokio_postgres::Config,
    dir: &Path,
    name: String,
    created_at: DateTime<Utc>,
) -> anyhow::Result<Manifest> {
    let tools = PgTools::locate(config.database.pg_bin.as_deref())?;
    let secret = jwt_secret::load(config)?;
    let mut client = connect(&target).await?;
    require_bypass(&client).await?;
    let server_version: String = client
        .query_one("SHOW server_version", &[])
        .await
        .context("reading the server's version")?
        .get(0);
    let version_num: String = client
        .query_one("SHOW server_version_num", &[])
        .await?
        .get(0);
    tools.check_against(version_num.parse().unwrap_or(0))?;

    // One snapshot for the dump and the counts, so the manifest describes the dump
    // exactly while writes go on.
    let tx = client
        .build_transaction()
        .isolation_level(galley_db::tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .context("opening the backup's snapshot")?;
    let snapshot: String = tx
        .query_one("SELECT pg_export_snapshot()", &[])
        .await
        .context("exporting the snapshot")?
        .get(0);
    let (row_counts, policies, grants) = inventory(&tx).await?;
    let sealing = config.backup.sealing()?;
    let (encryption, suffix) = sealing.describe();

    // The objects are copied while pg_dump runs, both inside the snapshot: the sooner a
    // version the rows name is copied, the less chance it is deleted first, and pg_dump
    // takes its locks at once (a schema change waiting on it cannot break the dump).
    let objects_name = format!("{}{suffix}", objects::OBJECTS);
    let (copying, objects) = match objects::local_root(config) {
        Ok(root) => {
            let versions: Vec<String> = tx
                .query(objects::VERSIONS, &[])
                .await
                .context("listing stored objects")?
                .iter()
                .map(|row| row.get(0))
                .collect();
            let path = dir.join(&objects_name);
            // A sealing of its own: the dump's goes with the dump.
            let sealing = config.backup.sealing()?;
            let copying =
                tokio::task::spawn_blocking(move || -> anyhow::Result<objects::ObjectsSummary> {
                    let out = sealing.seal(std::io::BufWriter::new(create_private(&path)?))?;
                    let (out, summary) = objects::write(&root, &versions, out)?;
                    let file = out.finish()?.into_inner().map_err(|err| err.into_error())?;
                    file.sync_all()?;
                    Ok(summary)
                });
            (Some(copying), None)
        }
        Err(Some(location)) => (
            None,
            Some(objects::ObjectsSummary {
                backend: "s3".to_owned(),
                location: Some(location),
                ..objects::ObjectsSummary::default()
            }),
        ),
        Err(None) => (None, None),
    };
    let dump_name = format!("{DATABASE}{suffix}");
    let secrets_name = format!("{SECRETS}{suffix}");
    let dump_path = dir.join(&dump_name);
    let sealing = {
        let tools = tools.clone();
        let target = target.clone();
        let dump_path = dump_path.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<Sealing> {
            if matches!(sealing, Sealing::None) {
                // Created 0600 before pg_dump writes into it.
                write_private(&dump_path, b"")?;
                tools.dump_snapshot(&target, &dump_path, &snapshot)?;
            } else {
                // Encrypted on its way to disk: no plaintext copy is ever written.
                let mut out = sealing.seal(create_private(&dump_path)?)?;
                tools.dump_snapshot_into(&target, &snapshot, &mut out)?;
                out.finish()?.sync_all()?;
            }
            Ok(sealing)
        })
        .await
        .context("running pg_dump")??
    };
    let objects = match copying {
        Some(copying) => Some(copying.await.context("copying stored objects")??),
        None => objects,
    };
    tx.commit().await.context("closing the snapshot")?;

    let mut signing_keys = BTreeMap::new();
    for key in &config.auth.signing_keys {
        let pem = fs::read_to_string(&key.private_key_file)
            .with_context(|| format!("reading {}", key.private_key_file.display()))?;
        signing_keys.insert(key.kid.clone(), pem);
    }
    let secrets = Secrets {
        jwt_secret: secret.expose().to_owned(),
        signing_keys,
    };
    let mut out = sealing.seal(create_private(&dir.join(&secrets_name))?)?;
    out.write_all(&serde_json::to_vec(&secrets)?)?;
    out.finish()?.sync_all()?;

    let mut parts = BTreeMap::new();
    for file in [&dump_name, &secrets_name, &objects_name] {
        if file == &objects_name && objects.as_ref().is_none_or(|o| o.backend != "local") {
            continue;
        }
        parts.insert(file.clone(), part(&dir.join(file))?);
    }
    let manifest = Manifest {
        name,
        created_at,
        galley_version: env!("CARGO_PKG_VERSION").to_owned(),
        server_version,
        tools_version: tools.version_line()?,
        encryption: encryption.map(str::to_owned),
        parts,
        row_counts,
        policies,
        grants,
        objects,
    };
    write_private(&dir.join(MANIFEST), &serde_json::to_vec_pretty(&manifest)?)?;
    Ok(manifest)
}

/// Every backup in the configured destination, newest first.
pub(crate) async fn list(config: &Config) -> anyhow::Result<Vec<Manifest>> {
    Destination::of(config)?.list().await
}

/// Every backup under `root`, newest first.
pub(crate) fn list_in(root: &Path) -> anyhow::Result<Vec<Manifest>> {
    let root = root.to_owned();
    let entries = match fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err).with_context(|| format!("reading {}", root.display())),
    };
    let mut manifests = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path().join(MANIFEST);
        let Ok(text) = fs::read(&path) else { continue };
        let manifest: Manifest =
            serde_json::from_slice(&text).with_context(|| format!("reading {}", path.display()))?;
        manifests.push(manifest);
    }
    manifests.sort_by_key(|manifest| std::cmp::Reverse(manifest.created_at));
    Ok(manifests)
}

/// Backup `name` (the newest when `None`) as local files, with every part's checksum
/// checked; a backup in a bucket is downloaded into `backup.dir` for the while.
async fn checked(config: &Config, name: Option<&str>) -> anyhow::Result<(Local, Manifest)> {
    let destination = Destination::of(config)?;
    let all = destination.list().await?;
    let manifest = match name {
        Some(name) => all
            .into_iter()
            .find(|m| m.name == name)
            .with_context(|| format!("no backup named {name} in {}", destination.describe()))?,
        None => all
            .into_iter()
            .next()
            .with_context(|| format!("no backups in {}", destination.describe()))?,
    };
    // A manifest names its own parts: only the names Galley writes are accepted, so a
    // manifest planted in a bucket or directory cannot point outside its backup.
    if taken_at(&manifest.name).is_none()
        || manifest
            .parts
            .keys()
            .any(|file| !PART_NAMES.contains(&file.as_str()))
    {
        anyhow::bail!(
            "backup {} has a manifest Galley did not write (unexpected names); refusing it",
            manifest.name
        );
    }
    let local = match &destination {
        Destination::Dir(root) => Local {
            dir: root.join(&manifest.name),
            temporary: false,
        },
        Destination::Bucket(bucket) => {
            let working = format!(
                ".download-{}-{}",
                manifest.name,
                hex::encode(rand::random::<[u8; 4]>())
            );
            let local = private_dir(&backup_dir(config), &working)?;
            bucket.download(&manifest, &local.dir).await?;
            local
        }
    };
    for (file, expected) in &manifest.parts {
        let found = part(&local.dir.join(file))?;
        if found.sha256 != expected.sha256 || found.bytes != expected.bytes {
            anyhow::bail!(
                "backup {} is damaged: {file} does not match its checksum in the manifest",
                manifest.name
            );
        }
    }
    Ok((local, manifest))
}

/// `galley backup verify`: restores into a scratch database on the same server and
/// compares rows, policies and grants with the manifest; the scratch database is dropped
/// whatever happens.
pub(crate) async fn verify(
    config: &Config,
    target: galley_db::tokio_postgres::Config,
    name: Option<&str>,
) -> anyhow::Result<Manifest> {
    let (local, manifest) = checked(config, name).await?;
    let dir = &local.dir;
    let tools = PgTools::locate(config.database.pg_bin.as_deref())?;
    let admin = connect(&target).await?;
    require_bypass(&admin).await?;
    let scratch = format!("galley_verify_{}", hex::encode(rand::random::<[u8; 6]>()));
    admin
        .batch_execute(&format!("CREATE DATABASE {scratch}"))
        .await
        .context("creating a scratch database (the connecting role needs CREATEDB)")?;
    let result = async {
        let mut scratch_target = target.clone();
        scratch_target.dbname(&scratch);
        {
            let tools = tools.clone();
            let scratch_target = scratch_target.clone();
            let dump = plain_dump(config, dir, &manifest)?;
            // Secrets that do not decrypt are a backup that cannot be restored.
            read_secrets(config, dir, &manifest)?;
            tokio::task::spawn_blocking(move || tools.restore(&scratch_target, &dump.path, false))
                .await
                .context("running pg_restore")??;
        }
        let restored = connect(&scratch_target).await?;
        let (counts, policies, grants) = inventory(&restored).await?;
        let mut problems = Vec::new();
        if counts != manifest.row_counts {
            for (table, expected) in &manifest.row_counts {
                let found = counts.get(table).copied();
                if found != Some(*expected) {
                    problems.push(format!(
                        "{table}: {expected} rows in the manifest, {} restored",
                        found.map_or("none".to_owned(), |n| n.to_string())
                    ));
                }
            }
        }
        if policies != manifest.policies {
            problems.push("the restored policies differ from the manifest's".to_owned());
        }
        if grants != manifest.grants {
            problems.push("the restored grants differ from the manifest's".to_owned());
        }
        // Every restored row's bytes are in the archive (or were deleted while the
        // backup ran, and are named as missing).
        if let Some(part) = objects_part(config, dir, &manifest)? {
            let archived = tokio::task::spawn_blocking(move || objects::read_all(part))
                .await
                .context("reading the objects archive")??;
            let summary = manifest.objects.clone().unwrap_or_default();
            let bytes: u64 = archived.iter().map(|(_, size)| size).sum();
            if archived.len() as u64 != summary.count || bytes != summary.bytes {
                problems.push(format!(
                    "the objects archive holds {} objects ({bytes} bytes), the manifest {} ({} bytes)",
                    archived.len(),
                    summary.count,
                    summary.bytes
                ));
            }
            let archived: std::collections::HashSet<String> =
                archived.into_iter().map(|(version, _)| version).collect();
            let unbacked = restored
                .query(objects::VERSIONS, &[])
                .await
                .context("listing restored objects")?
                .iter()
                .map(|row| row.get::<_, String>(0))
                .filter(|v| !archived.contains(v) && !summary.missing.contains(v))
                .count();
            if unbacked > 0 {
                problems.push(format!(
                    "{unbacked} restored objects have no bytes in the objects archive"
                ));
            }
        }
        drop(restored);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(anyhow::anyhow!(
                "backup {} does not restore as recorded: {}",
                manifest.name,
                problems.join("; ")
            ))
        }
    }
    .await;
    let dropped = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {scratch} WITH (FORCE)"))
        .await
        .context("dropping the scratch database");
    result?;
    dropped?;
    Ok(manifest)
}

/// `galley backup restore`: replaces the database's contents with the backup's, in one
/// transaction, and puts the backup's signing secret back where this instance reads it.
pub(crate) async fn restore(
    config: &Config,
    target: galley_db::tokio_postgres::Config,
    name: &str,
) -> anyhow::Result<Manifest> {
    let (local, manifest) = checked(config, Some(name)).await?;
    let dir = &local.dir;
    let tools = PgTools::locate(config.database.pg_bin.as_deref())?;
    let secrets = read_secrets(config, dir, &manifest)?;
    require_bypass(&connect(&target).await?).await?;
    // Stored objects first, staged beside the store (where the orphan sweep does not
    // look): a failure here changes no row; they move into place once the rows exist.
    let mut staged = None;
    if let Some(part) = objects_part(config, dir, &manifest)? {
        match objects::local_root(config) {
            Ok(root) => {
                let guard = objects::Staged::new(&root);
                let into = guard.dir().to_owned();
                let written = tokio::task::spawn_blocking(move || objects::restore(part, &into))
                    .await
                    .context("restoring stored objects")??;
                tracing::info!(written, "stored objects staged");
                staged = Some(guard);
            }
            Err(Some(location)) => anyhow::bail!(
                "backup {name} holds stored objects from the local backend, but this instance keeps objects in {location}; restore with storage.s3_url unset (they go to storage.root), then copy them to the bucket"
            ),
            Err(None) => tracing::warn!(
                "backup {name} holds stored objects, but storage is off (storage.enabled): they were not restored"
            ),
        }
    }
    {
        let target = target.clone();
        let dump = plain_dump(config, dir, &manifest)?;
        tokio::task::spawn_blocking(move || tools.restore(&target, &dump.path, true))
            .await
            .context("running pg_restore")??;
    }
    if let Some(guard) = staged {
        let moved = tokio::task::spawn_blocking(move || guard.promote())
            .await
            .context("moving restored objects into place")??;
        tracing::info!(moved, "stored objects restored");
    }
    // Rows naming bytes deleted while the backup ran go: the object was removed (or
    // replaced) just after the snapshot, and a row must never point at missing bytes.
    let missing = manifest
        .objects
        .as_ref()
        .map(|o| o.missing.clone())
        .unwrap_or_default();
    if !missing.is_empty() {
        let removed = connect(&target)
            .await?
            .execute(
                "DELETE FROM storage.objects WHERE version = ANY($1)",
                &[&missing],
            )
            .await
            .context("removing objects whose bytes the backup lacks")?;
        tracing::warn!(
            removed,
            "objects deleted while the backup ran were removed from the restored database"
        );
    }
    // Every running instance reloads its catalog (without an event trigger, on a server
    // where Galley is not superuser, nothing else would tell them).
    connect(&target)
        .await?
        .execute(
            "SELECT pg_notify($1, 'restore')",
            &[&galley_schema::CHANNEL],
        )
        .await
        .context("announcing the restored schema")?;
    match &config.auth.jwt_secret {
        Some(configured) if configured.expose_secret() != secrets.jwt_secret => {
            tracing::warn!(
                "auth.jwt_secret is configured and differs from the backup's: keys and sessions from the backup will not verify until it is set to the backup's secret (in its secrets.json)"
            );
        }
        Some(_) => {}
        None => jwt_secret::replace(config, &secrets.jwt_secret)?,
    }
    for key in &config.auth.signing_keys {
        if let Some(pem) = secrets.signing_keys.get(&key.kid)
            && !key.private_key_file.exists()
        {
            write_private(&key.private_key_file, pem.as_bytes())?;
        }
    }
    Ok(manifest)
}

/// `galley backup prune`: which backups `keep_daily` and `keep_weekly` do not keep (the
/// newest of each recent day and week, and always the newest of all).
pub(crate) fn to_prune(manifests: &[Manifest], keep_daily: u32, keep_weekly: u32) -> Vec<String> {
    let mut days = Vec::new();
    let mut weeks = Vec::new();
    let mut prune = Vec::new();
    // Newest first: the first backup of a day or week is its newest.
    for (index, manifest) in manifests.iter().enumerate() {
        let day = manifest.created_at.date_naive();
        let week = manifest.created_at.iso_week();
        let week = (week.year(), week.week());
        let mut keep = index == 0;
        if !days.contains(&day) && days.len() < keep_daily as usize {
            days.push(day);
            keep = true;
        }
        if !weeks.contains(&week) && weeks.len() < keep_weekly as usize {
            weeks.push(week);
            keep = true;
        }
        if !keep {
            prune.push(manifest.name.clone());
        }
    }
    prune
}

pub(crate) async fn prune(config: &Config) -> anyhow::Result<Vec<String>> {
    let destination = Destination::of(config)?;
    let manifests = destination.list().await?;
    let names = to_prune(
        &manifests,
        config.backup.keep_daily,
        config.backup.keep_weekly,
    );
    for manifest in manifests.iter().filter(|m| names.contains(&m.name)) {
        match &destination {
            Destination::Dir(root) => {
                let dir = root.join(&manifest.name);
                fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
            }
            Destination::Bucket(bucket) => bucket.remove(manifest).await?,
        }
    }
    Ok(names)
}

/// `galley backup` for the admin UI (`/admin/v1/backups`), with this instance's
/// configuration and owner connection.
pub(crate) struct AdminBackups {
    pub(crate) config: Config,
    pub(crate) owner: galley_db::tokio_postgres::Config,
}

/// A manifest as the admin UI lists it.
fn summary(manifest: &Manifest) -> serde_json::Value {
    serde_json::json!({
        "name": manifest.name,
        "created_at": manifest.created_at,
        "bytes": manifest.parts.values().map(|part| part.bytes).sum::<u64>(),
        "tables": manifest.row_counts.len(),
        "rows": manifest.row_counts.values().sum::<i64>(),
        "objects": manifest.objects.as_ref().filter(|o| o.backend == "local").map(|o| o.count),
        "encryption": manifest.encryption,
        "files": manifest
            .parts
            .keys()
            .filter(|file| !file.starts_with(SECRETS))
            .cloned()
            .chain([MANIFEST.to_owned()])
            .collect::<Vec<_>>(),
    })
}

/// An error for the admin UI: the whole chain, which names files and tools, never secrets.
fn words(err: &anyhow::Error) -> String {
    format!("{err:#}")
}

impl galley_gateway::Backups for AdminBackups {
    fn list(
        &self,
    ) -> futures_util::future::LocalBoxFuture<'static, Result<serde_json::Value, String>> {
        let config = self.config.clone();
        Box::pin(async move {
            let manifests = list(&config).await.map_err(|err| words(&err))?;
            Ok(serde_json::Value::Array(
                manifests.iter().map(summary).collect(),
            ))
        })
    }

    fn create(
        &self,
    ) -> futures_util::future::LocalBoxFuture<'static, Result<serde_json::Value, String>> {
        let (config, owner) = (self.config.clone(), self.owner.clone());
        Box::pin(async move {
            let created = create(&config, owner).await.map_err(|err| words(&err))?;
            Ok(serde_json::json!({
                "name": created.name,
                "location": created.location,
                "bytes": created.bytes,
            }))
        })
    }

    fn verify(
        &self,
        name: String,
    ) -> futures_util::future::LocalBoxFuture<'static, Result<serde_json::Value, String>> {
        let (config, owner) = (self.config.clone(), self.owner.clone());
        Box::pin(async move {
            let manifest = verify(&config, owner, Some(&name))
                .await
                .map_err(|err| words(&err))?;
            Ok(summary(&manifest))
        })
    }

    fn file(
        &self,
        name: String,
        file: String,
    ) -> futures_util::future::LocalBoxFuture<'static, Result<Option<PathBuf>, String>> {
        let config = self.config.clone();
        Box::pin(async move {
            let destination = Destination::of(&config).map_err(|err| words(&err))?;
            let Destination::Dir(root) = destination else {
                return Err("backups in a bucket are downloaded from the bucket".to_owned());
            };
            let manifests = list(&config).await.map_err(|err| words(&err))?;
            // Only a file the manifest names (or the manifest), of a backup that exists:
            // no path from the request reaches the file system.
            let Some(manifest) = manifests.iter().find(|m| m.name == name) else {
                return Ok(None);
            };
            // The secrets (the signing secret, worth more than any key) stay with the CLI.
            if file.starts_with(SECRETS)
                || (file != MANIFEST && !manifest.parts.contains_key(&file))
            {
                return Ok(None);
            }
            Ok(Some(root.join(&manifest.name).join(&file)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Manifest {
        let created_at: DateTime<Utc> = text.parse().expect("time");
        Manifest {
            name: text.to_owned(),
            created_at,
            galley_version: String::new(),
            server_version: String::new(),
            tools_version: String::new(),
            encryption: None,
            parts: BTreeMap::new(),
            row_counts: BTreeMap::new(),
            policies: Vec::new(),
            grants: Vec::new(),
            objects: None,
        }
    }

    #[test]
    fn prune_keeps_the_newest_of_each_recent_day_and_week() {
        // Newest first, as `list` returns them.
        let manifests: Vec<Manifest> = [
            "2026-12-02T12:00:00Z",
            "2026-12-02T06:00:00Z", // same day as the newest: pruned
            "2026-12-01T12:00:00Z", // newest of its day
            "2026-11-30T12:00:00Z", // newest of its day (kept by days, 3 allowed)
            "2026-11-25T12:00:00Z", // day 4: pruned by days, but newest of week 48
            "2026-11-24T12:00:00Z", // same week: pruned
            "2026-11-10T12:00:00Z", // week 46, past keep_weekly: pruned
        ]
        .into_iter()
        .map(at)
        .collect();
        assert_eq!(
            to_prune(&manifests, 3, 2),
            [
                "2026-12-02T06:00:00Z",
                "2026-11-24T12:00:00Z",
                "2026-11-10T12:00:00Z"
            ]
        );
        assert_eq!(to_prune(&manifests[..1], 0, 0), Vec::<String>::new());
    }
}

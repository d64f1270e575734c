//! Where the bytes live: an `object_store` backend, the local file system under the data
//! directory or an S3-compatible bucket. Objects are stored under their version's id
//! (`objects/<first two hex digits>/<version>`), never under a name a client chose, so no
//! key can reach outside the store, and an overwrite writes a new version beside the old
//! one. Bytes stream in and out with bounded memory: an upload is counted (against its
//! limit) and hashed as it arrives and written in parts once it outgrows one buffer.

use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use md5::{Digest, Md5};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, PutPayload, WriteMultipart};
use secrecy::ExposeSecret;

use crate::config::StorageConfig;

/// An upload up to this size is sent in one request; a larger one in parts of this size.
const PART_BYTES: usize = 8 * 1024 * 1024;
/// Parts of one upload in flight at once.
const PARTS_IN_FLIGHT: usize = 2;
/// Bytes read from a local file per chunk of a download.
const READ_BYTES: usize = 256 * 1024;

#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    /// The local backend's root, for what `object_store` does not do: flushing a stored
    /// object to disk before its row is written, and reading files in large chunks.
    local: Option<Arc<LocalFileSystem>>,
    root: Option<PathBuf>,
    prefix: Path,
    kind: &'static str,
    description: String,
}

/// What an upload stored.
#[derive(Debug, Clone)]
pub struct Stored {
    pub size: u64,
    /// The MD5 of the bytes, quoted, as Supabase's ETags are.
    pub etag: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PutError {
    #[error("the object exceeds its size limit")]
    TooLarge,
    #[error("the request body failed: {0}")]
    Body(String),
    #[error("the object store failed: {0}")]
    Store(#[from] object_store::Error),
    #[error("flushing the object to disk failed: {0}")]
    Sync(#[from] std::io::Error),
}

/// Where an S3-compatible bucket is and how to reach it (storage's and backup's
/// `s3_*` settings).
pub struct S3Settings<'a> {
    /// `s3://bucket` or `s3://bucket/prefix`.
    pub url: &'a str,
    pub endpoint: Option<&'a str>,
    pub region: Option<&'a str>,
    pub access_key_id: Option<&'a str>,
    pub secret_access_key: Option<&'a secrecy::SecretString>,
    pub virtual_hosted_style: bool,
}

/// The client of the bucket `settings` name, and the prefix within it. Credentials and
/// region come from the settings where set, otherwise from the standard `AWS_*`
/// environment (and, on AWS, from the instance's or pod's role). Errors name the
/// configuration `section`.
pub fn s3_bucket(
    settings: &S3Settings<'_>,
    section: &str,
) -> Result<(object_store::aws::AmazonS3, Path), String> {
    let url = settings.url;
    let invalid = |why: &str| format!("{section}.s3_url `{url}`: {why}");
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| invalid("expected s3://bucket or s3://bucket/prefix"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(invalid("names no bucket"));
    }
    let prefix = Path::parse(prefix.trim_matches('/')).map_err(|err| invalid(&err.to_string()))?;
    let mut builder = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_virtual_hosted_style_request(settings.virtual_hosted_style);
    if let Some(endpoint) = settings.endpoint {
        // An endpoint spelled http:// is the operator's choice of plain HTTP (a MinIO on
        // the same host, say); anything else needs TLS.
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"));
    }
    if let Some(region) = settings.region {
        builder = builder.with_region(region);
    }
    if let Some(id) = settings.access_key_id {
        builder = builder.with_access_key_id(id);
    }
    if let Some(secret) = settings.secret_access_key {
        builder = builder.with_secret_access_key(secret.expose_secret());
    }
    let store = builder
        .build()
        .map_err(|err| format!("{section}.s3_*: {err}"))?;
    Ok((store, prefix))
}

/// A download: the object's size and its bytes (the requested range of them).
pub struct Download {
    pub size: u64,
    pub range: Range<u64>,
    pub body: BoxStream<'static, Result<Bytes, std::io::Error>>,
}

impl Store {
    /// The store `config` describes: S3 when `storage.s3_url` is set, else the local
    /// directory (`storage.root`, default `<data_dir>/storage`), created 0700.
    pub fn from_config(config: &StorageConfig, data_dir: &FsPath) -> Result<Self, String> {
        match &config.s3_url {
            Some(url) => Self::s3(config, url),
            None => {
                let root = config
                    .root
                    .clone()
                    .unwrap_or_else(|| data_dir.join("storage"));
                Self::local(&root)
            }
        }
    }

    pub fn local(root: &FsPath) -> Result<Self, String> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(|err| format!("creating {}: {err}", root.display()))?;
        let store = LocalFileSystem::new_with_prefix(root)
            .map_err(|err| format!("opening {}: {err}", root.display()))?
            .with_automatic_cleanup(true);
        let store = Arc::new(store);
        Ok(Self {
            inner: store.clone(),
            local: Some(store),
            root: Some(root.to_path_buf()),
            prefix: Path::default(),
            kind: "local",
            description: root.display().to_string(),
        })
    }

    fn s3(config: &StorageConfig, url: &str) -> Result<Self, String> {
        let (store, prefix) = s3_bucket(
            &S3Settings {
                url,
                endpoint: config.s3_endpoint.as_deref(),
                region: config.s3_region.as_deref(),
                access_key_id: config.s3_access_key_id.as_deref(),
                secret_access_key: config.s3_secret_access_key.as_ref(),
                virtual_hosted_style: config.s3_virtual_hosted_style,
            },
            "storage",
        )?;
        Ok(Self {
            inner: Arc::new(store),
            local: None,
            root: None,
            prefix,
            kind: "s3",
            description: url.trim_end_matches('/').to_owned(),
        })
    }

    /// `local` or `s3`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Where the store is, for the log and the admin UI.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The local backend's root directory.
    pub fn local_root(&self) -> Option<PathBuf> {
        self.root.clone()
    }

    /// Where version `version` of an object is stored.
    pub fn object_path(&self, version: &str) -> Path {
        let fan = version.get(..2).unwrap_or("00");
        self.prefix.child("objects").child(fan).child(version)
    }

    /// Where the parts of resumable upload `id` are stored.
    pub fn upload_part_path(&self, id: &str, part: &str) -> Path {
        self.prefix.child("uploads").child(id).child(part)
    }

    pub fn uploads_path(&self) -> Path {
        self.prefix.child("uploads")
    }

    pub fn objects_path(&self) -> Path {
        self.prefix.child("objects")
    }

    /// Stores `body` at `path`: refused with [`PutError::TooLarge`] as soon as it passes
    /// `limit` bytes, and nothing is left behind when it fails. When `keep_partial`, a
    /// body that breaks off keeps what arrived (a resumable upload's part) and reports
    /// its size; `Err(Body)` is then never returned.
    pub async fn put<S, E>(
        &self,
        path: &Path,
        body: S,
        limit: u64,
        keep_partial: bool,
    ) -> Result<Stored, PutError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let mut body = body;
        let mut hasher = Md5::new();
        let mut size: u64 = 0;
        let mut first: Vec<Bytes> = Vec::new();
        let mut buffered = 0usize;
        let mut writer: Option<WriteMultipart> = None;
        let mut broke_off = None;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(err) => {
                    broke_off = Some(err.to_string());
                    break;
                }
            };
            size += chunk.len() as u64;
            if size > limit {
                if let Some(writer) = writer {
                    let _ = writer.abort().await;
                }
                return Err(PutError::TooLarge);
            }
            hasher.update(&chunk);
            match &mut writer {
                Some(writer) => {
                    if let Err(err) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                        return Err(err.into());
                    }
                    writer.put(chunk);
                }
                None => {
                    buffered += chunk.len();
                    first.push(chunk);
                    if buffered > PART_BYTES {
                        let upload = self.inner.put_multipart(path).await?;
                        let mut started = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
                        for piece in first.drain(..) {
                            started.put(piece);
                        }
                        writer = Some(started);
                    }
                }
            }
        }
        if let Some(reason) = broke_off
            && !keep_partial
        {
            if let Some(writer) = writer {
                let _ = writer.abort().await;
            }
            return Err(PutError::Body(reason));
        }
        match writer {
            Some(writer) => {
                writer.finish().await?;
            }
            None => {
                self.inner.put(path, PutPayload::from_iter(first)).await?;
            }
        }
        if let Err(err) = self.flush_to_disk(path).await {
            let _ = self.inner.delete(path).await;
            return Err(err.into());
        }
        Ok(Stored {
            size,
            etag: format!("\"{}\"", hex::encode(hasher.finalize())),
        })
    }

    /// On the local backend, the file and its directory flushed to disk, so a row written
    /// next never outlives its bytes in a power loss.
    async fn flush_to_disk(&self, path: &Path) -> std::io::Result<()> {
        let Some(local) = &self.local else {
            return Ok(());
        };
        let file = local
            .path_to_filesystem(path)
            .map_err(std::io::Error::other)?;
        tokio::task::spawn_blocking(move || {
            std::fs::File::open(&file)?.sync_all()?;
            if let Some(dir) = file.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// The bytes at `path`, the whole object or `range` of it.
    pub async fn get(
        &self,
        path: &Path,
        range: Option<Range<u64>>,
    ) -> Result<Download, object_store::Error> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let result = self.inner.get_opts(path, options).await?;
        let size = result.meta.size;
        let range = result.range.clone();
        let body = match result.payload {
            object_store::GetResultPayload::File(file, _) => {
                read_file(tokio::fs::File::from_std(file), range.clone())
            }
            object_store::GetResultPayload::Stream(stream) => stream
                .map(|chunk| chunk.map_err(std::io::Error::other))
                .boxed(),
        };
        Ok(Download { size, range, body })
    }

    pub async fn delete(&self, path: &Path) -> Result<(), object_store::Error> {
        match self.inner.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Deletes `path`, logging a failure (the sweep removes what is left).
    pub async fn delete_logged(&self, path: &Path) {
        if let Err(err) = self.delete(path).await {
            tracing::warn!(path = %path, error = %err, "deleting stored bytes failed; the sweep will retry");
        }
    }

    pub async fn copy(&self, from: &Path, to: &Path) -> Result<(), object_store::Error> {
        self.inner.copy(from, to).await?;
        self.flush_to_disk(to)
            .await
            .map_err(|err| object_store::Error::Generic {
                store: "local",
                source: Box::new(err),
            })
    }

    /// Every object under `prefix`, with when it was last written.
    pub fn list(
        &self,
        prefix: &Path,
    ) -> BoxStream<'static, Result<object_store::ObjectMeta, object_store::Error>> {
        self.inner.list(Some(prefix))
    }
}

/// A local file's `range`, in chunks of [`READ_BYTES`].
fn read_file(
    file: tokio::fs::File,
    range: Range<u64>,
) -> BoxStream<'static, Result<Bytes, std::io::Error>> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    futures_util::stream::try_unfold(
        (file, range.start, range.end, false),
        |(mut file, position, end, seeked)| async move {
            if position >= end {
                return Ok(None);
            }
            if !seeked && position > 0 {
                file.seek(std::io::SeekFrom::Start(position)).await?;
            }
            let want = (end - position).min(READ_BYTES as u64) as usize;
            let mut buf = bytes::BytesMut::with_capacity(want);
            while buf.len() < want {
                let read = (&mut file)
                    .take((want - buf.len()) as u64)
                    .read_buf(&mut buf)
                    .await?;
                if read == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the stored object is shorter than its size",
                    ));
                }
            }
            let read = buf.len() as u64;
            Ok(Some((buf.freeze(), (file, position + read, end, true))))
        },
    )
    .boxed()
}

//! Backups in an S3-compatible bucket (`backup.s3_url`), through `object_store`. A backup
//! is assembled in `backup.dir` as for a local destination, then uploaded part by part
//! under `<prefix>/<name>/`, the manifest last: a backup whose manifest is there is
//! complete. `verify` and `restore` download one into `backup.dir` and remove the copy
//! afterwards.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use futures_util::StreamExt;
use object_store::ObjectStore;
use object_store::path::Path as Key;
use tokio::io::AsyncWriteExt;

use super::{BackupConfig, MANIFEST, Manifest};

/// A bucket and the prefix under which backups are kept.
pub(crate) struct Bucket {
    store: Arc<dyn ObjectStore>,
    prefix: Key,
    url: String,
}

impl Bucket {
    /// The bucket `backup.s3_url` names, if it is set. Credentials and region come from
    /// `backup.s3_*` where set, otherwise from the standard `AWS_*` environment (and, on
    /// AWS, from the instance's or pod's role).
    pub(crate) fn from_config(config: &BackupConfig) -> anyhow::Result<Option<Self>> {
        let Some(url) = config.s3_url.as_deref() else {
            return Ok(None);
        };
        let (store, prefix) = galley_storage::store::s3_bucket(
            &galley_storage::store::S3Settings {
                url,
                endpoint: config.s3_endpoint.as_deref(),
                region: config.s3_region.as_deref(),
                access_key_id: config.s3_access_key_id.as_deref(),
                secret_access_key: config.s3_secret_access_key.as_ref(),
                virtual_hosted_style: false,
            },
            "backup",
        )
        .map_err(|err| anyhow::anyhow!("invalid configuration: {err}"))?;
        Ok(Some(Self {
            store: Arc::new(store),
            prefix,
            url: url.trim_end_matches('/').to_owned(),
        }))
    }

    fn key(&self, name: &str, file: &str) -> Key {
        self.prefix.child(name).child(file)
    }

    /// Where backup `name` is, for people: `s3://bucket/prefix/name`.
    pub(crate) fn location(&self, name: &str) -> String {
        format!("{}/{name}", self.url)
    }

    /// Uploads the backup assembled in `dir`: every part, then the manifest.
    pub(crate) async fn upload(&self, dir: &Path, manifest: &Manifest) -> anyhow::Result<()> {
        for file in manifest.parts.keys().map(String::as_str).chain([MANIFEST]) {
            let key = self.key(&manifest.name, file);
            let mut source = tokio::fs::File::open(dir.join(file))
                .await
                .with_context(|| format!("reading {}", dir.join(file).display()))?;
            // Buffered up to 10 MiB, then a multipart upload: memory stays bounded
            // whatever the dump's size.
            let mut sink = object_store::buffered::BufWriter::new(self.store.clone(), key.clone());
            let copied = tokio::io::copy(&mut source, &mut sink).await;
            match copied {
                Ok(_) => sink.shutdown().await,
                Err(err) => {
                    let _ = sink.abort().await;
                    Err(err)
                }
            }
            .with_context(|| format!("uploading {key}"))?;
        }
        Ok(())
    }

    /// Every complete backup in the bucket (those whose manifest is there), newest first.
    pub(crate) async fn manifests(&self) -> anyhow::Result<Vec<Manifest>> {
        let mut manifests = Vec::new();
        for key in self.manifest_keys().await? {
            let bytes = self
                .store
                .get(&key)
                .await
                .with_context(|| format!("reading {key}"))?
                .bytes()
                .await
                .with_context(|| format!("reading {key}"))?;
            let manifest: Manifest =
                serde_json::from_slice(&bytes).with_context(|| format!("reading {key}"))?;
            manifests.push(manifest);
        }
        manifests.sort_by_key(|manifest| std::cmp::Reverse(manifest.created_at));
        Ok(manifests)
    }

    /// When the newest complete backup was taken, from the listing alone (one request
    /// per thousand objects): what the age metric needs, polled often.
    pub(crate) async fn newest(&self) -> anyhow::Result<Option<chrono::DateTime<chrono::Utc>>> {
        Ok(self
            .manifest_keys()
            .await?
            .iter()
            .filter_map(|key| {
                let parts: Vec<_> = key.parts().collect();
                let name = parts.len().checked_sub(2).map(|at| parts[at].clone())?;
                super::taken_at(name.as_ref())
            })
            .max())
    }

    async fn manifest_keys(&self) -> anyhow::Result<Vec<Key>> {
        let mut keys = Vec::new();
        let mut listing = self.store.list(Some(&self.prefix));
        while let Some(object) = listing.next().await {
            let object = object.with_context(|| format!("listing {}", self.url))?;
            if object.location.filename() == Some(MANIFEST) {
                keys.push(object.location);
            }
        }
        Ok(keys)
    }

    /// Downloads backup `name`'s parts and manifest into `dir`, each file 0600.
    pub(crate) async fn download(&self, manifest: &Manifest, dir: &Path) -> anyhow::Result<()> {
        for file in manifest.parts.keys() {
            let key = self.key(&manifest.name, file);
            let path = dir.join(file);
            let mut out = tokio::fs::File::from_std(super::create_private(&path)?);
            let mut stream = self
                .store
                .get(&key)
                .await
                .with_context(|| format!("downloading {key}"))?
                .into_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.with_context(|| format!("downloading {key}"))?;
                out.write_all(&chunk)
                    .await
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            out.sync_all()
                .await
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }

    /// Removes backup `name`: its manifest first, so a removal cut short leaves no
    /// backup that looks complete and is not.
    pub(crate) async fn remove(&self, manifest: &Manifest) -> anyhow::Result<()> {
        let files = [MANIFEST]
            .into_iter()
            .chain(manifest.parts.keys().map(String::as_str));
        for file in files {
            let key = self.key(&manifest.name, file);
            match self.store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(err) => {
                    return Err(err)
                        .with_context(|| format!("removing {}", self.location(&manifest.name)));
                }
            }
        }
        Ok(())
    }
}

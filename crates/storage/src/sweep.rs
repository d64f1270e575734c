//! The orphan sweep: bytes no row names are removed. They are what a crash leaves between
//! storing an upload and writing its row (or between an overwrite's commit and removing
//! the old version), and a resumable upload abandoned past its expiry. Only bytes older
//! than [`GRACE`] are considered, so an upload between its two steps is never touched.
//! Every instance sweeps every [`INTERVAL`]; two sweeping at once remove the same
//! orphans, which is harmless.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::StreamExt;
use galley_db::Pool;
use object_store::path::Path;

use crate::store::Store;

/// Bytes younger than this are never swept.
pub const GRACE: Duration = Duration::from_secs(15 * 60);
pub const INTERVAL: Duration = Duration::from_secs(60 * 60);

/// What one sweep removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub objects: usize,
    pub uploads: usize,
    pub staged_files: usize,
}

/// Sweeps every [`INTERVAL`] until the task is dropped.
pub async fn run(store: Store, owner: Pool) {
    let mut tick = tokio::time::interval(INTERVAL);
    loop {
        tick.tick().await;
        match sweep(&store, &owner, GRACE).await {
            Ok(swept) if swept != Swept::default() => {
                tracing::info!(
                    objects = swept.objects,
                    uploads = swept.uploads,
                    staged_files = swept.staged_files,
                    "storage sweep removed orphaned bytes"
                );
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "storage sweep failed; it will run again"),
        }
    }
}

/// One sweep, removing orphans older than `grace`.
pub async fn sweep(store: &Store, owner: &Pool, grace: Duration) -> Result<Swept, String> {
    let cutoff = chrono::Utc::now() - chrono::Duration::from_std(grace).unwrap_or_default();
    let mut swept = Swept::default();
    let client = owner.get().await.map_err(|err| err.to_string())?;
    // Expired resumable uploads go first, so their parts are orphans below.
    client
        .execute(
            "DELETE FROM galley.storage_uploads WHERE expires_at < now()",
            &[],
        )
        .await
        .map_err(|err| galley_db::report(&err).to_string())?;

    let mut listing = store.list(&store.objects_path());
    let mut batch: Vec<(Path, String)> = Vec::new();
    loop {
        let next = listing.next().await;
        let done = next.is_none();
        if let Some(meta) = next {
            let meta = meta.map_err(|err| err.to_string())?;
            if meta.last_modified < cutoff
                && let Some(version) = meta.location.filename()
            {
                batch.push((meta.location.clone(), version.to_owned()));
            }
        }
        if batch.len() >= 500 || (done && !batch.is_empty()) {
            let versions: Vec<String> = batch.iter().map(|(_, v)| v.clone()).collect();
            let rows = client
                .query(
                    "SELECT v FROM unnest($1::text[]) v \
                     WHERE NOT EXISTS (SELECT 1 FROM storage.objects o WHERE o.version = v)",
                    &[&versions],
                )
                .await
                .map_err(|err| galley_db::report(&err).to_string())?;
            let orphans: HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
            for (path, version) in batch.drain(..) {
                if orphans.contains(&version) {
                    store.delete(&path).await.map_err(|err| err.to_string())?;
                    swept.objects += 1;
                }
            }
        }
        if done {
            break;
        }
    }

    let live: HashSet<String> = client
        .query("SELECT id::text FROM galley.storage_uploads", &[])
        .await
        .map_err(|err| galley_db::report(&err).to_string())?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut parts = store.list(&store.uploads_path());
    let mut gone = HashSet::new();
    while let Some(meta) = parts.next().await {
        let meta = meta.map_err(|err| err.to_string())?;
        let upload = meta
            .location
            .prefix_match(&store.uploads_path())
            .and_then(|mut parts| parts.next())
            .map(|part| part.as_ref().to_owned());
        if let Some(upload) = upload
            && meta.last_modified < cutoff
            && !live.contains(&upload)
        {
            store
                .delete(&meta.location)
                .await
                .map_err(|err| err.to_string())?;
            gone.insert(upload);
        }
    }
    swept.uploads = gone.len();

    if let Some(root) = store.local_root() {
        let cutoff = std::time::SystemTime::now() - grace;
        swept.staged_files = tokio::task::spawn_blocking(move || remove_staged(&root, cutoff))
            .await
            .map_err(|err| err.to_string())?;
    }
    Ok(swept)
}

/// The local backend writes an object to `<name>#<n>` and renames it when complete; a
/// crash in between leaves the staged file, which no listing shows.
fn remove_staged(dir: &std::path::Path, cutoff: std::time::SystemTime) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            removed += remove_staged(&path, cutoff);
        } else if entry.file_name().to_string_lossy().contains('#')
            && meta.modified().is_ok_and(|modified| modified < cutoff)
            && std::fs::remove_file(&path).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

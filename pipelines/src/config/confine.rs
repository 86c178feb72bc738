//! Paths that come from the admin API must stay under the storage directory: an API caller may
//! point a file exporter or a disk queue at a new place, but never at `/etc` or `~/.ssh`.

use super::{ComponentId, ConfigError};
use crate::registry::ExporterSpec;
use siemrelay_exporters::file::FileConfig;
use std::path::{Component, Path, PathBuf};

/// The errors for every path of an API-sent exporter that leaves `storage`.
pub fn exporter_paths(id: &ComponentId, spec: &ExporterSpec, storage: &Path) -> Vec<ConfigError> {
    let mut paths: Vec<(&str, PathBuf)> = Vec::new();
    if let Some(file) = spec.config_as::<FileConfig>() {
        paths.push(("path", PathBuf::from(&file.path)));
    }
    if let Some(directory) = &spec.delivery.queue.directory {
        paths.push(("queue.directory", directory.clone()));
    }
    paths
        .into_iter()
        .filter_map(|(key, path)| {
            under(&path, storage).err().map(|message| ConfigError {
                path: format!("exporters.{}.{key}", id.id),
                message,
            })
        })
        .collect()
}

/// Checks that `path` is inside `storage`, both lexically (`..` resolved) and after following
/// the symbolic links of the part of it that exists.
pub fn under(path: &Path, storage: &Path) -> Result<(), String> {
    let cwd =
        std::env::current_dir().map_err(|e| format!("cannot resolve {}: {e}", path.display()))?;
    let storage_abs = normalize(&cwd.join(storage));
    let path_abs = normalize(&cwd.join(path));
    let refuse = |shown: &Path| {
        format!(
            "{} is outside the storage directory {}: a path sent through the admin API must stay under service.storage.directory",
            shown.display(),
            storage_abs.display()
        )
    };
    if !path_abs.starts_with(&storage_abs) || path_abs == storage_abs {
        return Err(refuse(path));
    }
    let real_storage = std::fs::canonicalize(&storage_abs).unwrap_or(storage_abs.clone());
    let mut existing = path_abs.as_path();
    while std::fs::symlink_metadata(existing).is_err() {
        match existing.parent() {
            Some(parent) => existing = parent,
            None => return Ok(()),
        }
    }
    let real = std::fs::canonicalize(existing).map_err(|e| format!("{}: {e}", path.display()))?;
    let storage_exists = std::fs::symlink_metadata(&storage_abs).is_ok();
    if storage_exists && !real.starts_with(&real_storage) {
        return Err(format!(
            "{} (through a symbolic link: {})",
            refuse(path),
            real.display()
        ));
    }
    Ok(())
}

/// `..` and `.` resolved without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_must_stay_inside_storage_lexically_and_through_links() {
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("data");
        std::fs::create_dir_all(storage.join("out")).unwrap();
        assert!(under(&storage.join("out/events.ndjson"), &storage).is_ok());
        assert!(under(&storage.join("new/dir/q"), &storage).is_ok());
        for bad in [
            PathBuf::from("/etc/cron.d/x"),
            storage.join("../escape.ndjson"),
            storage.join("out/../../escape"),
            storage.clone(),
        ] {
            let error = under(&bad, &storage).unwrap_err();
            assert!(error.contains("service.storage.directory"), "{error}");
        }
        std::os::unix::fs::symlink("/etc", storage.join("link")).unwrap();
        let error = under(&storage.join("link/passwd"), &storage).unwrap_err();
        assert!(error.contains("symbolic link"), "{error}");
    }
}

//! Which files may be loaded as plugins: only shared libraries inside the plugins directory
//! (`service.plugins.directory`), whose real path stays inside it, that nobody but root or
//! siemrelay's own user can change, and whose ELF dynamic symbol table defines the plugin entry
//! point. All of it is checked before `dlopen`, because loading a library runs its
//! constructors: a file that is not a plugin never runs any code.

use siemrelay_plugin_sdk::abi::ENTRY_SYMBOL;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use super::library::LoadError;

static DIRECTORY: RwLock<Option<PathBuf>> = RwLock::new(None);

/// Sets the plugins directory of this process (the config loader does, from
/// `service.plugins.directory`). Until it is set no plugin loads.
pub fn set_directory(directory: &Path) {
    *DIRECTORY.write().unwrap_or_else(|p| p.into_inner()) = Some(directory.to_path_buf());
}

/// The plugins directory, if set.
pub fn directory() -> Option<PathBuf> {
    DIRECTORY.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Resolves `library` (relative: inside the plugins directory) to its real path and checks
/// that it may be loaded. Returns the real path to open.
pub fn check(library: &Path) -> Result<PathBuf, LoadError> {
    let directory = directory().ok_or_else(|| {
        LoadError::Untrusted("no plugins directory is set (service.plugins.directory)".into())
    })?;
    let real_directory = std::fs::canonicalize(&directory).map_err(|e| {
        LoadError::NotFound(format!(
            "the plugins directory {} (service.plugins.directory): {e}",
            directory.display()
        ))
    })?;
    let named = if library.is_absolute() {
        library.to_path_buf()
    } else {
        directory.join(library)
    };
    let real = std::fs::canonicalize(&named)
        .map_err(|e| LoadError::NotFound(format!("{}: {e}", named.display())))?;
    if !real.starts_with(&real_directory) {
        return Err(LoadError::Untrusted(format!(
            "{} is outside the plugins directory {}: plugins load only from service.plugins.directory",
            real.display(),
            real_directory.display()
        )));
    }
    let metadata = std::fs::metadata(&real)
        .map_err(|e| LoadError::NotFound(format!("{}: {e}", real.display())))?;
    if !metadata.is_file() {
        return Err(LoadError::NotFound(format!(
            "{} is not a file",
            real.display()
        )));
    }
    check_owner(&real, &metadata)?;
    // Every directory from the plugins directory down to the file.
    let mut dir = real.parent();
    while let Some(current) = dir {
        let metadata = std::fs::metadata(current)
            .map_err(|e| LoadError::NotFound(format!("{}: {e}", current.display())))?;
        check_owner(current, &metadata)?;
        if current == real_directory {
            break;
        }
        dir = current.parent();
    }
    check_entry_symbol(&real)?;
    Ok(real)
}

/// Refuses a file or directory that others than root and this process's user may change.
fn check_owner(path: &Path, metadata: &std::fs::Metadata) -> Result<(), LoadError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if metadata.uid() != 0 && metadata.uid() != me {
        return Err(LoadError::Untrusted(format!(
            "{} is owned by uid {}, neither root nor siemrelay's user (uid {me})",
            path.display(),
            metadata.uid()
        )));
    }
    // Even a sticky world-writable directory (like /tmp) lets anyone add a file.
    if metadata.mode() & 0o002 != 0 {
        return Err(LoadError::Untrusted(format!(
            "{} is writable by every user (mode {:o}): anyone could put a plugin there",
            path.display(),
            metadata.mode() & 0o7777
        )));
    }
    Ok(())
}

/// Reads the ELF file and checks that its dynamic symbol table defines the entry point.
fn check_entry_symbol(path: &Path) -> Result<(), LoadError> {
    use object::{Object, ObjectSymbol};
    let data =
        std::fs::read(path).map_err(|e| LoadError::NotFound(format!("{}: {e}", path.display())))?;
    let file = object::File::parse(&*data).map_err(|e| {
        LoadError::Open(format!(
            "{} is not a shared library this system can load: {e}",
            path.display()
        ))
    })?;
    if file.format() != object::BinaryFormat::Elf {
        return Err(LoadError::Open(format!(
            "{} is not an ELF shared library",
            path.display()
        )));
    }
    let defined = file.dynamic_symbols().any(|symbol| {
        symbol.is_definition() && symbol.name_bytes().ok() == Some(ENTRY_SYMBOL.as_bytes())
    });
    if defined {
        Ok(())
    } else {
        Err(LoadError::NoEntry(format!(
            "{} defines no such dynamic symbol (checked before loading it, so none of its code ran)",
            path.display()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn files_outside_the_directory_or_writable_by_anyone_are_refused_before_loading() {
        let plugins = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        set_directory(plugins.path());
        let outside = elsewhere.path().join("libx.so");
        std::fs::write(&outside, b"x").unwrap();
        let error = check(&outside).unwrap_err().to_string();
        assert!(error.contains("outside the plugins directory"), "{error}");
        std::os::unix::fs::symlink(&outside, plugins.path().join("liblink.so")).unwrap();
        let error = check(Path::new("liblink.so")).unwrap_err().to_string();
        assert!(error.contains("outside the plugins directory"), "{error}");

        let inside = plugins.path().join("libopen.so");
        std::fs::write(&inside, b"x").unwrap();
        std::fs::set_permissions(&inside, std::fs::Permissions::from_mode(0o666)).unwrap();
        let error = check(Path::new("libopen.so")).unwrap_err().to_string();
        assert!(error.contains("writable by every user"), "{error}");
        std::fs::set_permissions(&inside, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(plugins.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let error = check(Path::new("libopen.so")).unwrap_err().to_string();
        assert!(error.contains("writable by every user"), "{error}");
        std::fs::set_permissions(plugins.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        // Now only the ELF check is left, and this is no ELF file.
        let error = check(Path::new("libopen.so")).unwrap_err().to_string();
        assert!(error.contains("not a shared library"), "{error}");
    }
}

//! The server's long-lived private keys on disk: the Noise key (`noise.private_key_path`) and
//! the embedded DERP server's key (`derp.server.private_key_path`). Each file holds
//! `privkey:` and 64 hex digits, the format Go Headscale writes, so an existing installation's
//! keys are reused as they are. A missing file is created with mode 0600 (parent directories
//! too); an unreadable or malformed file is refused rather than silently replaced, because a
//! new Noise key would make every client re-register.

use std::io::Write as _;
use std::path::Path;
use std::str::FromStr;

use hs_types::{MachinePrivate, NodePrivate};
use rand::rngs::OsRng;

use crate::error::Error;

/// Loads the Noise private key from `path`, creating it if the file does not exist.
pub fn load_or_create_noise_key(path: &Path) -> Result<MachinePrivate, Error> {
    load_or_create(
        path,
        "noise",
        || MachinePrivate::generate(&mut OsRng),
        |k| k.to_text(),
    )
}

/// Loads the DERP server's private key from `path`, creating it if the file does not exist.
pub fn load_or_create_derp_key(path: &Path) -> Result<NodePrivate, Error> {
    load_or_create(
        path,
        "DERP",
        || NodePrivate::generate(&mut OsRng),
        |k| k.to_text(),
    )
}

/// Loads both keys and refuses a configuration where they are the same key (for instance
/// both paths naming one file): the Noise key must not double as the DERP key.
pub fn load_server_keys(
    noise_path: &Path,
    derp_path: Option<&Path>,
) -> Result<(MachinePrivate, Option<NodePrivate>), Error> {
    let noise = load_or_create_noise_key(noise_path)?;
    let Some(derp_path) = derp_path else {
        return Ok((noise, None));
    };
    let derp = load_or_create_derp_key(derp_path)?;
    if noise.secret_bytes() == derp.secret_bytes() {
        return Err(Error::SameKey(format!(
            "{} and {}",
            noise_path.display(),
            derp_path.display()
        )));
    }
    Ok((noise, Some(derp)))
}

fn load_or_create<K: FromStr<Err = hs_types::KeyError>>(
    path: &Path,
    what: &'static str,
    generate: impl FnOnce() -> K,
    to_text: impl FnOnce(&K) -> String,
) -> Result<K, Error> {
    if path.as_os_str().is_empty() {
        return Err(Error::KeyPathMissing(what));
    }
    match std::fs::read_to_string(path) {
        Ok(text) => K::from_str(text.trim()).map_err(|e| Error::KeyMalformed {
            what,
            path: path.to_owned(),
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = generate();
            write_new(path, &to_text(&key)).map_err(|source| Error::KeyWrite {
                what,
                path: path.to_owned(),
                source,
            })?;
            tracing::info!(path = %path.display(), key = what, "generated a new private key");
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(Error::KeyMalformed {
            what,
            path: path.to_owned(),
            reason: "not text".into(),
        }),
        Err(source) => Err(Error::KeyRead {
            what,
            path: path.to_owned(),
            source,
        }),
    }
}

fn write_new(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    // create_new: never overwrite a key another process wrote in the meantime.
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// Replaces the private state file at `path` (mode 0600) with `bytes`: written to a
/// temporary file beside it, synced, renamed over it, and the directory synced, so a crash
/// leaves the old content or the new, never part of either. For the JSON state kept beside
/// the keys (`api_v2.json`, `oidc_groups.json`).
pub fn replace_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_then_reloads_the_same_key_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dir/noise_private.key");
        let first = load_or_create_noise_key(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("privkey:"));
        assert_eq!(text.len(), "privkey:".len() + 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let second = load_or_create_noise_key(&path).unwrap();
        assert_eq!(first.public(), second.public());
    }

    #[test]
    fn reads_a_go_headscale_key_file_with_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("noise.key");
        let key = MachinePrivate::generate(&mut OsRng);
        std::fs::write(&path, format!("{}\n", key.to_text())).unwrap();
        assert_eq!(
            load_or_create_noise_key(&path).unwrap().public(),
            key.public()
        );
    }

    #[test]
    fn refuses_malformed_key_and_leaves_it_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("noise.key");
        std::fs::write(&path, "privkey:nothex").unwrap();
        let err = load_or_create_noise_key(&path).unwrap_err();
        assert!(matches!(err, Error::KeyMalformed { .. }), "{err}");
        assert!(err.to_string().contains("noise.key"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "privkey:nothex");
    }

    #[test]
    fn refuses_unreadable_path() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be cannot be read as a key.
        let err = load_or_create_noise_key(dir.path()).unwrap_err();
        assert!(matches!(err, Error::KeyRead { .. }), "{err}");
    }

    #[test]
    fn refuses_the_same_key_for_noise_and_derp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.key");
        let err = load_server_keys(&path, Some(&path)).unwrap_err();
        assert!(matches!(err, Error::SameKey(_)), "{err}");
        let other = dir.path().join("derp.key");
        let (noise, derp) = load_server_keys(&path, Some(&other)).unwrap();
        assert_ne!(noise.secret_bytes(), derp.unwrap().secret_bytes());
    }
}

//! `cargo xtask codegen [--check]`: files generated from code, kept in the repository so they can be read and
//! reviewed; CI runs `--check` so that a change to their source without regenerating them fails.
//!
//! Today that is `docs/troubleshooting.md`, rendered from the backupd-rules catalog.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// Writes every generated file, or with `check`, fails if any differs from what would be written.
pub(crate) fn run(check: bool) -> anyhow::Result<()> {
    let root = project_root()?;
    ensure_file(
        &root,
        Path::new("docs/troubleshooting.md"),
        &backupd_rules::catalog::markdown(),
        check,
    )
}

/// Makes `root/relative` hold exactly `contents`, or with `check`, fails if it does not.
fn ensure_file(root: &Path, relative: &Path, contents: &str, check: bool) -> anyhow::Result<()> {
    let path = root.join(relative);
    let current = match std::fs::read_to_string(&path) {
        // A checkout that turned line endings into CRLF is still up to date.
        Ok(text) => Some(text.replace("\r\n", "\n")),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("failed to read {}", path.display())),
    };
    if current.as_deref() == Some(contents) {
        return Ok(());
    }
    if check {
        bail!(
            "{} is out of date: run `cargo xtask codegen` and commit the result",
            relative.display()
        );
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
    }
    std::fs::write(&path, contents)
        .with_context(|| format!("failed to write {}", path.display()))?;
    eprintln!("xtask codegen: updated {}", relative.display());
    Ok(())
}

/// The workspace root: xtask's manifest directory is `<root>/xtask`.
fn project_root() -> anyhow::Result<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .context("xtask's manifest directory has no parent")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed docs match the catalog; the same check CI runs, so plain `cargo test` catches it too.
    #[test]
    fn generated_files_are_up_to_date() {
        if let Err(e) = run(true) {
            panic!("{e:#}");
        }
    }

    #[test]
    fn check_fails_on_a_stale_file_and_write_fixes_it() {
        let root = std::env::temp_dir().join(format!("xtask-codegen-test-{}", std::process::id()));
        let relative = Path::new("docs/generated.md");
        let result = (|| -> anyhow::Result<()> {
            // Missing, then stale: --check fails both times and names the command to run.
            let missing = ensure_file(&root, relative, "new\n", true);
            assert!(missing.is_err());
            ensure_file(&root, relative, "old\n", false)?;
            let stale = ensure_file(&root, relative, "new\n", true)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(stale.contains("cargo xtask codegen"), "{stale}");
            ensure_file(&root, relative, "new\n", false)?;
            assert_eq!(std::fs::read_to_string(root.join(relative))?, "new\n");
            ensure_file(&root, relative, "new\n", true)?;
            // CRLF line endings count as up to date.
            std::fs::write(root.join(relative), "new\r\n")?;
            ensure_file(&root, relative, "new\n", true)
        })();
        let _ = std::fs::remove_dir_all(&root);
        if let Err(e) = result {
            panic!("{e:#}");
        }
    }
}

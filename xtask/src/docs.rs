//! Shell completions and the man page of `backupdctl`, generated from its clap command, so they never drift from
//! the real flags.

use std::path::Path;

use anyhow::Context;
use clap_complete::Shell;

/// Writes `backupdctl`'s completions for bash, zsh and fish into `out_dir` (`backupdctl.bash`, `_backupdctl`,
/// `backupdctl.fish`), creating it if needed.
pub(crate) fn completions(out_dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("failed to create {}", out_dir.display()))?;
    let mut command = backupdctl::command();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let path = clap_complete::generate_to(shell, &mut command, "backupdctl", out_dir)
            .with_context(|| {
                format!(
                    "failed to write the {shell} completions into {}",
                    out_dir.display()
                )
            })?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Writes `backupdctl`'s man page, `backupdctl.1` (its subcommands included), into `out_dir`, creating it if
/// needed.
pub(crate) fn man(out_dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("failed to create {}", out_dir.display()))?;
    let mut page = Vec::new();
    clap_mangen::Man::new(backupdctl::command())
        .render(&mut page)
        .context("failed to render the backupdctl man page")?;
    let path = out_dir.join("backupdctl.1");
    std::fs::write(&path, page).with_context(|| format!("failed to write {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

//! `backupdctl`: see the library's documentation; this only hands the process's arguments and streams to it.

use std::io::IsTerminal;

fn main() {
    // stderr stays unlocked: a progress bar draws on it from its own thread.
    let stderr = std::io::stderr();
    let terminal = stderr.is_terminal();
    let code = backupdctl::run_with_terminal(
        std::env::args_os(),
        &mut std::io::stdout().lock(),
        &mut &stderr,
        terminal,
    );
    std::process::exit(code);
}

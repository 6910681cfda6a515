//! `backupdctl`: see the library's documentation; this only hands the process's arguments and streams to it.

fn main() {
    let code = backupdctl::run(
        std::env::args_os(),
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    std::process::exit(code);
}

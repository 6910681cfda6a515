//! `backupd-usb-scan`: prints what the USB watcher sees, as JSON, one device per line. For checking a host by
//! hand and for the umockdev tests of the watcher itself.

fn main() -> std::process::ExitCode {
    match backupd_usb::scan() {
        Ok(scan) => {
            for d in &scan.devices {
                match serde_json::to_string(d) {
                    Ok(line) => println!("{line}"),
                    Err(e) => eprintln!("backupd-usb-scan: {e}"),
                }
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("backupd-usb-scan: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

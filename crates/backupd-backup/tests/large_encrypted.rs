//! A 100,000-row encrypted Manifest.db is verified with the password in bounded memory.
//!
//! Alone in its test binary, so the process's peak RSS is this test's: the peak is reset (Linux
//! `/proc/self/clear_refs`) after the backup is built, and read after the verification.

use std::io::Write;
use std::path::Path;

use backupd_backup::encrypted::Password;
use backupd_backup::verify::{self, Method};
use backupd_proto::backup_cipher::{Encryptor, Padding};
use backupd_proto::keybag::{ClassKeys, KEY_LEN, MANIFEST_KEY_CLASS, SealParams};
use backupd_proto::mobilebackup2::{self, MANIFEST_DB_SCHEMA, MbFile};

const ROWS: u64 = 100_000;
fn rows() -> u64 {
    std::env::var("LARGE_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ROWS)
}
const PASSWORD: &str = "cento mila righe";
/// The peak resident memory the verification may add.
const MAX_RSS: u64 = 64 << 20;

fn encrypt(key: &[u8; KEY_LEN], plain: &[u8]) -> Vec<u8> {
    let mut e = Encryptor::new(key, Padding::Pkcs7);
    let mut out = Vec::new();
    e.update(plain, &mut out);
    e.finish(&mut out).expect("padded");
    out
}

fn key_of(n: u64) -> [u8; KEY_LEN] {
    let mut k = [0u8; KEY_LEN];
    k[..8].copy_from_slice(&n.to_le_bytes());
    k[8] = 0x5a;
    k
}

/// An encrypted backup as a phone writes it: keybag, a key per file, the files, an encrypted Manifest.db.
fn build(folder: &Path) {
    let keys = ClassKeys::from_keys((1..=11).map(|c| (c, key_of(1_000_000 + u64::from(c)))));
    let keybag = keys.seal(
        PASSWORD.as_bytes(),
        &SealParams {
            uuid: [3; 16],
            hmck: [4; 40],
            salt: vec![5; 20],
            iterations: 10,
            dp_salt: Some(vec![6; 20]),
            dp_iterations: Some(100),
        },
    );
    let plain_db = folder.join("plain.db");
    let mut db = rusqlite::Connection::open(&plain_db).expect("db");
    db.execute_batch(MANIFEST_DB_SCHEMA).expect("schema");
    let tx = db.transaction().expect("tx");
    {
        let mut insert = tx
            .prepare("INSERT INTO Files (fileID, domain, relativePath, flags, file) VALUES (?1, ?2, ?3, 1, ?4)")
            .expect("insert");
        for n in 0..rows() {
            let path = format!("Media/DCIM/{:03}APPLE/IMG_{n:06}.HEIC", n / 1000);
            let id = mobilebackup2::file_id("CameraRollDomain", &path);
            let plain = format!("photo {n} of the camera roll").into_bytes();
            let file_key = key_of(n);
            let record = MbFile {
                relative_path: path.clone(),
                size: plain.len() as u64,
                mode: 0o100_644,
                protection_class: 3,
                encryption_key: Some(keys.wrap_prefixed(3, &file_key).expect("wrap")),
                ..MbFile::default()
            };
            let dir = folder.join(&id[..2]);
            if !dir.is_dir() {
                std::fs::create_dir(&dir).expect("mkdir");
            }
            std::fs::write(dir.join(&id), encrypt(&file_key, &plain)).expect("file");
            insert
                .execute(rusqlite::params![
                    id,
                    "CameraRollDomain",
                    path,
                    record.to_archive()
                ])
                .expect("row");
        }
    }
    tx.commit().expect("commit");
    drop(db);
    let manifest_key = key_of(42);
    let plain = std::fs::read(&plain_db).expect("plain db");
    std::fs::write(folder.join("Manifest.db"), encrypt(&manifest_key, &plain))
        .expect("Manifest.db");
    std::fs::remove_file(&plain_db).expect("rm");
    let mut d = plist::Dictionary::new();
    d.insert("IsEncrypted".into(), true.into());
    d.insert("BackupKeyBag".into(), plist::Value::Data(keybag.to_bytes()));
    d.insert(
        "ManifestKey".into(),
        plist::Value::Data(
            keys.wrap_prefixed(MANIFEST_KEY_CLASS, &manifest_key)
                .expect("wrap"),
        ),
    );
    plist::Value::Dictionary(d)
        .to_file_binary(folder.join("Manifest.plist"))
        .expect("Manifest.plist");
    let mut s = plist::Dictionary::new();
    s.insert("SnapshotState".into(), "finished".into());
    s.insert(
        "Date".into(),
        plist::Value::Date(std::time::SystemTime::UNIX_EPOCH.into()),
    );
    plist::Value::Dictionary(s)
        .to_file_xml(folder.join("Status.plist"))
        .expect("Status.plist");
}

fn status_kib(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("the field")
}

#[test]
fn a_100k_row_encrypted_manifest_verifies_with_the_password_in_bounded_memory() {
    // 100,000 small files: on a RAM file system when there is one, as the test is about memory, not disk.
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .expect("dir");
    let started = std::time::Instant::now();
    build(dir.path());
    let built = started.elapsed();
    let before = status_kib("VmRSS:") << 10;
    // Resets the peak to the current RSS, so VmHWM afterwards is the verification's own peak.
    std::fs::File::options()
        .write(true)
        .open("/proc/self/clear_refs")
        .and_then(|mut f| f.write_all(b"5"))
        .expect("reset the peak RSS");
    let report = verify::verify_with(
        dir.path(),
        &Default::default(),
        Some(&Password::new(PASSWORD.into())),
    );
    let peak = status_kib("VmHWM:") << 10;
    eprintln!(
        "built in {:.1} s, verified in {:.1} s",
        built.as_secs_f64(),
        (started.elapsed() - built).as_secs_f64()
    );
    assert!(report.ok, "{:?}", report.problems);
    assert_eq!(report.method, Method::Decrypted);
    assert_eq!(report.files, rows());
    assert_eq!(report.decrypted_files, verify::SAMPLE_FILES);
    let grew = peak.saturating_sub(before);
    eprintln!(
        "100k-row encrypted Manifest.db: RSS before {} MiB, peak {} MiB (+{} MiB)",
        before >> 20,
        peak >> 20,
        grew >> 20
    );
    assert!(grew < MAX_RSS, "the verification grew RSS by {grew} bytes");
}

//! The store keeps the newest complete backup through every interruption.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use backupd_backup::store::{Recovery, Store};
use backupd_backup::verify::{self, Method};

const UDID: &str = "00008110-001A2B3C4D5E6F01";

fn status(folder: &Path, date: &str) {
    let mut d = plist::Dictionary::new();
    d.insert("SnapshotState".into(), "finished".into());
    d.insert(
        "Date".into(),
        plist::Value::Date(plist::Date::from_xml_format(date).expect("date")),
    );
    d.insert("Version".into(), "3.3".into());
    // Staged files are hard links to the newest backup: replace, never write through.
    let _ = std::fs::remove_file(folder.join("Status.plist"));
    plist::Value::Dictionary(d)
        .to_file_xml(folder.join("Status.plist"))
        .expect("status");
}

fn file_id(domain: &str, path: &str) -> String {
    use std::fmt::Write;
    // SHA-1 of "domain-path", as Finder names backup files; computed here with a tiny implementation-free
    // trick: the tests only need distinct 40-hex names, so derive them from the text's bytes.
    let mut h: [u8; 20] = [0; 20];
    for (i, b) in format!("{domain}-{path}").bytes().enumerate() {
        h[i % 20] = h[i % 20].wrapping_mul(31).wrapping_add(b);
    }
    h.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn mbfile(size: u64) -> Vec<u8> {
    let mut file = plist::Dictionary::new();
    file.insert("Size".into(), size.into());
    file.insert("$class".into(), plist::Value::Uid(plist::Uid::new(2)));
    let mut class = plist::Dictionary::new();
    class.insert("$classname".into(), "MBFile".into());
    let mut top = plist::Dictionary::new();
    top.insert("root".into(), plist::Value::Uid(plist::Uid::new(1)));
    let mut d = plist::Dictionary::new();
    d.insert("$archiver".into(), "NSKeyedArchiver".into());
    d.insert("$version".into(), 100000u64.into());
    d.insert("$top".into(), plist::Value::Dictionary(top));
    d.insert(
        "$objects".into(),
        plist::Value::Array(vec![
            "$null".into(),
            plist::Value::Dictionary(file),
            plist::Value::Dictionary(class),
        ]),
    );
    let mut out = Vec::new();
    plist::Value::Dictionary(d)
        .to_writer_binary(&mut out)
        .expect("bplist");
    out
}

/// Writes a complete, verifiable backup with `files` into `folder`.
fn backup(folder: &Path, date: &str, files: &[(&str, &[u8])]) {
    std::fs::create_dir_all(folder).expect("mkdir");
    status(folder, date);
    let mut manifest = plist::Dictionary::new();
    manifest.insert("IsEncrypted".into(), false.into());
    let _ = std::fs::remove_file(folder.join("Manifest.plist"));
    plist::Value::Dictionary(manifest)
        .to_file_xml(folder.join("Manifest.plist"))
        .expect("manifest");
    let _ = std::fs::remove_file(folder.join("Manifest.db"));
    let db = rusqlite::Connection::open(folder.join("Manifest.db")).expect("db");
    db.execute_batch(
        "CREATE TABLE Files (fileID TEXT PRIMARY KEY, domain TEXT, relativePath TEXT, flags INTEGER, file BLOB);
         CREATE TABLE Properties (key TEXT PRIMARY KEY, value BLOB);",
    )
    .expect("schema");
    for (path, bytes) in files {
        let id = file_id("HomeDomain", path);
        std::fs::create_dir_all(folder.join(&id[..2])).expect("mkdir");
        let _ = std::fs::remove_file(folder.join(&id[..2]).join(&id));
        std::fs::write(folder.join(&id[..2]).join(&id), bytes).expect("write");
        db.execute(
            "INSERT INTO Files VALUES (?1, 'HomeDomain', ?2, 1, ?3)",
            rusqlite::params![id, path, mbfile(bytes.len() as u64)],
        )
        .expect("insert");
    }
}

#[test]
fn a_first_backup_commits_and_verifies() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::new(dir.path());
    assert_eq!(store.recover(UDID).expect("recover"), Recovery::Clean);
    let staging = store.begin(UDID).expect("begin");
    backup(
        &staging.dir(),
        "2026-11-20T10:00:00Z",
        &[("Library/a.db", b"alpha"), ("Media/b.jpg", b"bravo!")],
    );
    let report = verify::verify(&staging.dir(), &[]);
    assert!(report.ok, "{report:?}");
    assert_eq!(report.method, Method::Manifest);
    assert_eq!((report.files, report.bytes), (2, 11));
    store.commit(staging, 3).expect("commit");
    store.record_verification(UDID, &report).expect("record");
    let list = store.list(UDID);
    assert_eq!(list.len(), 1);
    assert!(list[0].verified);
    assert_eq!(list[0].name, "current");
    assert!(
        !dir.path()
            .join(".backupd")
            .join(UDID)
            .join("staging")
            .exists()
    );
}

#[test]
fn staging_shares_unchanged_files_and_never_writes_through_a_link() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::new(dir.path());
    let current = store.current_dir(UDID);
    backup(
        &current,
        "2026-11-19T10:00:00Z",
        &[("a", b"old a"), ("b", b"same b")],
    );
    let staging = store.begin(UDID).expect("begin");
    let id_a = file_id("HomeDomain", "a");
    let id_b = file_id("HomeDomain", "b");
    let ino = |p: &Path| std::fs::metadata(p).expect("stat").ino();
    assert_eq!(
        ino(&current.join(&id_b[..2]).join(&id_b)),
        ino(&staging.dir().join(&id_b[..2]).join(&id_b))
    );
    // The engine writes a new file and renames it over the link: the current backup's copy is untouched.
    let target = staging
        .resolve(&format!("{UDID}/{}/{id_a}", &id_a[..2]))
        .expect("resolve");
    let part = target.with_extension("part");
    std::fs::write(&part, b"new a!").expect("write");
    std::fs::rename(&part, &target).expect("rename");
    assert_eq!(
        std::fs::read(current.join(&id_a[..2]).join(&id_a)).expect("read"),
        b"old a"
    );
    drop(staging);
    // An interrupted run leaves staging behind; the newest backup is intact and the next run starts clean.
    assert_eq!(
        store.recover(UDID).expect("recover"),
        Recovery::LeftoverStaging
    );
    assert!(verify::verify(&current, &[]).ok);
    let again = store.begin(UDID).expect("begin again");
    assert_eq!(
        std::fs::read(again.dir().join(&id_a[..2]).join(&id_a)).expect("read"),
        b"old a"
    );
}

#[test]
fn the_device_snapshot_leftover_is_not_carried_into_a_new_run() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::new(dir.path());
    let current = store.current_dir(UDID);
    backup(&current, "2026-11-19T10:00:00Z", &[("a", b"a")]);
    std::fs::create_dir_all(current.join("Snapshot/00")).expect("leftover");
    let staging = store.begin(UDID).expect("begin");
    assert!(!staging.dir().join("Snapshot").exists());
    assert!(staging.dir().join("Status.plist").exists());
}

#[test]
fn a_commit_interrupted_between_its_renames_is_finished_by_recovery() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::new(dir.path());
    let current = store.current_dir(UDID);
    backup(&current, "2026-11-19T10:00:00Z", &[("a", b"first")]);
    let books = dir.path().join(".backupd").join(UDID);
    // State 1: journal written, nothing renamed yet.
    let staging = store.begin(UDID).expect("begin");
    backup(&staging.dir(), "2026-11-20T10:00:00Z", &[("a", b"second")]);
    std::fs::write(books.join("commit.json"), br#"{"version_name":"v1"}"#).expect("journal");
    drop(staging);
    assert_eq!(
        store.recover(UDID).expect("recover"),
        Recovery::CommitFinished
    );
    assert_eq!(
        store
            .list(UDID)
            .iter()
            .map(|b| b.name.as_str())
            .collect::<Vec<_>>(),
        ["current", "v1"]
    );
    let id = file_id("HomeDomain", "a");
    assert_eq!(
        std::fs::read(current.join(&id[..2]).join(&id)).expect("read"),
        b"second"
    );

    // State 2: the old backup already moved to versions, the staged one not yet in place.
    let staging = store.begin(UDID).expect("begin");
    backup(&staging.dir(), "2026-11-21T10:00:00Z", &[("a", b"third")]);
    std::fs::write(books.join("commit.json"), br#"{"version_name":"v2"}"#).expect("journal");
    std::fs::rename(&current, books.join("versions/v2")).expect("first rename");
    drop(staging);
    assert!(!current.exists(), "the crash point: no newest folder");
    assert_eq!(
        store.recover(UDID).expect("recover"),
        Recovery::CommitFinished
    );
    assert_eq!(
        std::fs::read(current.join(&id[..2]).join(&id)).expect("read"),
        b"third"
    );
    assert!(verify::verify(&current, &[]).ok);
    assert_eq!(store.list(UDID).len(), 3);
}

#[test]
fn versions_beyond_the_retention_are_pruned_oldest_first() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::new(dir.path());
    for day in 1..=5 {
        let staging = store.begin(UDID).expect("begin");
        backup(
            &staging.dir(),
            &format!("2026-11-0{day}T10:00:00Z"),
            &[("a", format!("day {day}").as_bytes())],
        );
        store.commit(staging, 2).expect("commit");
    }
    let names: Vec<String> = store.list(UDID).into_iter().map(|b| b.name).collect();
    assert_eq!(names, ["current", "20261104T100000Z", "20261103T100000Z"]);
}

#[test]
fn paths_that_leave_staging_or_cross_a_symlink_are_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::new(dir.path());
    let staging = store.begin(UDID).expect("begin");
    for bad in [
        "../x",
        &format!("{UDID}/../../x"),
        "",
        &format!("{UDID}//x"),
        &format!("{UDID}/a\\b"),
    ] {
        assert!(staging.resolve(bad).is_err(), "{bad:?} accepted");
    }
    std::os::unix::fs::symlink("/tmp", staging.dir().join("evil")).expect("symlink");
    assert!(staging.resolve(&format!("{UDID}/evil/x")).is_err());
    assert!(staging.resolve(&format!("{UDID}/ab/cdef")).is_ok());
}

#[test]
fn verification_finds_missing_and_truncated_files_and_a_corrupt_database() {
    let dir = tempfile::tempdir().expect("dir");
    let folder = dir.path().join(UDID);
    backup(
        &folder,
        "2026-11-20T10:00:00Z",
        &[("a", b"12345"), ("b", b"678")],
    );
    assert!(verify::verify(&folder, &[]).ok);
    let id_a = file_id("HomeDomain", "a");
    std::fs::write(folder.join(&id_a[..2]).join(&id_a), b"123").expect("truncate");
    let id_b = file_id("HomeDomain", "b");
    std::fs::remove_file(folder.join(&id_b[..2]).join(&id_b)).expect("remove");
    let report = verify::verify(&folder, &[]);
    assert!(!report.ok);
    assert_eq!(report.problems.len(), 2, "{:?}", report.problems);
    let mut db = std::fs::read(folder.join("Manifest.db")).expect("db");
    let n = db.len();
    db[n / 2..].iter_mut().for_each(|b| *b = 0xA5);
    std::fs::write(folder.join("Manifest.db"), db).expect("corrupt");
    assert!(!verify::verify(&folder, &[]).ok);
}

#[test]
fn an_encrypted_backup_is_checked_by_structure_and_received_files() {
    let dir = tempfile::tempdir().expect("dir");
    let folder = dir.path().join(UDID);
    std::fs::create_dir_all(folder.join("ab")).expect("mkdir");
    status(&folder, "2026-11-20T10:00:00Z");
    let keys = backupd_proto::keybag::ClassKeys::from_keys((1..=11).map(|c| (c, [c as u8; 32])));
    let keybag = keys.seal(
        b"pw",
        &backupd_proto::keybag::SealParams {
            uuid: [1; 16],
            hmck: [2; 40],
            salt: vec![3; 20],
            iterations: 2,
            dp_salt: Some(vec![4; 20]),
            dp_iterations: Some(2),
        },
    );
    let write_manifest = |bag: Vec<u8>| {
        let mut manifest = plist::Dictionary::new();
        manifest.insert("IsEncrypted".into(), true.into());
        manifest.insert("BackupKeyBag".into(), plist::Value::Data(bag));
        manifest.insert("ManifestKey".into(), plist::Value::Data(vec![4, 0, 0, 0]));
        plist::Value::Dictionary(manifest)
            .to_file_xml(folder.join("Manifest.plist"))
            .expect("manifest");
    };
    write_manifest(keybag.to_bytes());
    std::fs::write(folder.join("Manifest.db"), b"\x8f\x01 encrypted bytes").expect("db");
    std::fs::write(folder.join("ab/abcd"), b"cipher").expect("file");
    let report = verify::verify(&folder, &[("ab/abcd".into(), 6)]);
    assert!(report.ok, "{report:?}");
    assert_eq!(report.method, Method::Structure);
    assert_eq!(
        report.keybag_id.as_deref(),
        Some("01010101010101010101010101010101")
    );
    let report = verify::verify(&folder, &[("ab/abcd".into(), 7)]);
    assert!(!report.ok);
    // A keybag that does not parse is a problem even without the password.
    write_manifest(b"VERS\0\0\0\x04\0".to_vec());
    let report = verify::verify(&folder, &[("ab/abcd".into(), 6)]);
    assert!(!report.ok);
    assert!(
        report.problems.iter().any(|p| p.contains("keybag")),
        "{report:?}"
    );
}

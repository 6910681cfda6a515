//! WhatsApp's chat database as the phone backs it up: a real SQLite `ChatStorage.sqlite` in the app group
//! `group.net.whatsapp.WhatsApp.shared`, with WhatsApp's Core Data tables and column names (`ZWACHATSESSION`,
//! `ZWAMESSAGE` with `ZMESSAGEDATE` in seconds since 2001-01-01, `ZWAMEDIAITEM`, `Z_PRIMARYKEY`,
//! `Z_METADATA`) and a few hundred messages, so a host that looks inside a backup reads real rows.
//!
//! Names and types follow public descriptions of the iOS database (bemayr/watoi docs/database/ios.md and the
//! forensic tools that read it); the content is invented and deterministic: it depends only on the profile's
//! seed and on how many times the file changed, each change adding a few newer messages.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rusqlite::{Connection, params};

/// The app group's backup domain.
pub const DOMAIN: &str = "AppDomainGroup-group.net.whatsapp.WhatsApp.shared";
/// The chat database's path in the domain.
pub const PATH: &str = "ChatStorage.sqlite";
/// Seconds from the Unix epoch to 2001-01-01T00:00:00Z, the epoch of `NSDate` and Core Data.
pub const APPLE_EPOCH: i64 = 978_307_200;
/// Messages in the profile's state; each change of the file adds [`MESSAGES_PER_CHANGE`].
pub const BASE_MESSAGES: u64 = 312;
/// Messages a change of the file adds, one an hour after the newest.
pub const MESSAGES_PER_CHANGE: u64 = 5;
/// The newest message of the profile's state: 2026-11-20T21:47:00Z, the evening before the tests' "now".
pub const NEWEST_MESSAGE: i64 = 1_795_211_220;
/// The oldest: 2026-05-01T08:00:00Z.
const OLDEST_MESSAGE: i64 = 1_777_622_400;

const CHATS: &[(&str, &str, i64)] = &[
    ("393331234567@s.whatsapp.net", "Giulia", 0),
    ("393479876543@s.whatsapp.net", "Marco", 0),
    ("393201112223@s.whatsapp.net", "Mamma", 0),
    ("120363025246125486@g.us", "Calcetto del giovedì", 1),
    ("120363041234567890@g.us", "Condominio Via Roma 12", 1),
    ("393389990001@s.whatsapp.net", "Idraulico Rossi", 0),
];

const TEXTS: &[&str] = &[
    "Ciao! Come stai?",
    "Ci vediamo alle 8?",
    "Ok, perfetto 👍",
    "Hai visto il messaggio di prima?",
    "Arrivo tra dieci minuti",
    "Grazie mille!",
    "Domani piove, meglio rimandare",
    "Ti mando la foto appena posso",
    "Buonanotte",
    "Chi porta il pallone?",
];

// Core Data's own tables plus the ones a reader of the chats needs; columns as in WhatsApp's model.
const SCHEMA: &str = "
CREATE TABLE Z_PRIMARYKEY (Z_ENT INTEGER PRIMARY KEY, Z_NAME VARCHAR, Z_SUPER INTEGER, Z_MAX INTEGER);
CREATE TABLE Z_METADATA (Z_VERSION INTEGER PRIMARY KEY, Z_UUID VARCHAR(255), Z_PLIST BLOB);
CREATE TABLE ZWACHATSESSION ( Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, Z_OPT INTEGER, ZARCHIVED INTEGER,
  ZCONTACTABID INTEGER, ZFLAGS INTEGER, ZHIDDEN INTEGER, ZIDENTITYVERIFICATIONEPOCH INTEGER,
  ZIDENTITYVERIFICATIONSTATE INTEGER, ZMESSAGECOUNTER INTEGER, ZREMOVED INTEGER, ZSESSIONTYPE INTEGER,
  ZSPOTLIGHTSTATUS INTEGER, ZUNREADCOUNT INTEGER, ZGROUPINFO INTEGER, ZLASTMESSAGE INTEGER, ZPROPERTIES INTEGER,
  ZLASTMESSAGEDATE TIMESTAMP, ZLOCATIONSHARINGENDDATE TIMESTAMP, ZCONTACTIDENTIFIER VARCHAR, ZCONTACTJID VARCHAR,
  ZETAG VARCHAR, ZLASTMESSAGETEXT VARCHAR, ZPARTNERNAME VARCHAR, ZSAVEDINPUT VARCHAR );
CREATE TABLE ZWAMEDIAITEM ( Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, Z_OPT INTEGER, ZCLOUDSTATUS INTEGER,
  ZFILESIZE INTEGER, ZMEDIAORIGIN INTEGER, ZMOVIEDURATION INTEGER, ZMESSAGE INTEGER, ZASPECTRATIO FLOAT,
  ZHACCURACY FLOAT, ZLATITUDE FLOAT, ZLONGITUDE FLOAT, ZMEDIAURLDATE TIMESTAMP, ZAUTHORNAME VARCHAR,
  ZCOLLECTIONNAME VARCHAR, ZMEDIALOCALPATH VARCHAR, ZMEDIAURL VARCHAR, ZTHUMBNAILLOCALPATH VARCHAR, ZTITLE VARCHAR,
  ZVCARDNAME VARCHAR, ZVCARDSTRING VARCHAR, ZXMPPTHUMBPATH VARCHAR, ZMEDIAKEY BLOB, ZMETADATA BLOB );
CREATE TABLE ZWAMESSAGE ( Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, Z_OPT INTEGER,
  ZCHILDMESSAGESDELIVEREDCOUNT INTEGER, ZCHILDMESSAGESPLAYEDCOUNT INTEGER, ZCHILDMESSAGESREADCOUNT INTEGER,
  ZDATAITEMVERSION INTEGER, ZDOCID INTEGER, ZENCRETRYCOUNT INTEGER, ZFILTEREDRECIPIENTCOUNT INTEGER, ZFLAGS INTEGER,
  ZGROUPEVENTTYPE INTEGER, ZISFROMME INTEGER, ZMESSAGEERRORSTATUS INTEGER, ZMESSAGESTATUS INTEGER,
  ZMESSAGETYPE INTEGER, ZSORT INTEGER, ZSPOTLIGHTSTATUS INTEGER, ZSTARRED INTEGER, ZCHATSESSION INTEGER,
  ZGROUPMEMBER INTEGER, ZLASTSESSION INTEGER, ZMEDIAITEM INTEGER, ZMESSAGEINFO INTEGER, ZPARENTMESSAGE INTEGER,
  ZMESSAGEDATE TIMESTAMP, ZSENTDATE TIMESTAMP, ZFROMJID VARCHAR, ZMEDIASECTIONID VARCHAR, ZPHASH VARCHAR,
  ZPUSHNAME VARCHAR, ZSTANZAID VARCHAR, ZTEXT VARCHAR, ZTOJID VARCHAR );
CREATE INDEX ZWAMESSAGE_ZCHATSESSION_INDEX ON ZWAMESSAGE (ZCHATSESSION);
CREATE INDEX ZWAMESSAGE_ZMESSAGEDATE_INDEX ON ZWAMESSAGE (ZMESSAGEDATE);
";

/// Whether `domain`/`path` is the chat database.
pub fn is_chat_storage(domain: &str, path: &str) -> bool {
    domain == DOMAIN && path == PATH
}

/// How many messages the database holds after `generation` changes.
pub fn message_count(generation: u64) -> u64 {
    BASE_MESSAGES.saturating_add(generation.saturating_mul(MESSAGES_PER_CHANGE))
}

/// The newest message's date (Unix seconds) after `generation` changes.
pub fn newest_message(generation: u64) -> i64 {
    let extra = i64::try_from(generation.saturating_mul(MESSAGES_PER_CHANGE)).unwrap_or(i64::MAX);
    NEWEST_MESSAGE.saturating_add(extra.saturating_mul(3600))
}

/// The database's bytes for `seed` after `generation` changes; built once and kept, since the backup asks for
/// its size and its bytes many times.
pub fn chat_storage(seed: u64, generation: u64) -> Arc<Vec<u8>> {
    type Cache = Mutex<HashMap<(u64, u64), Arc<Vec<u8>>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = match cache.lock() {
        Ok(m) => m,
        Err(poisoned) => poisoned.into_inner(),
    };
    map.entry((seed, generation))
        .or_insert_with(|| match build(seed, generation) {
            Ok(bytes) => Arc::new(bytes),
            // The simulator cannot go on without its files; this is a bug or a full temp folder, not input.
            Err(e) => panic!("building the simulated ChatStorage.sqlite: {e}"),
        })
        .clone()
}

fn build(seed: u64, generation: u64) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(PATH);
    let mut conn = Connection::open(&path)?;
    conn.execute_batch("PRAGMA page_size = 4096; PRAGMA journal_mode = DELETE;")?;
    conn.execute_batch(SCHEMA)?;
    let tx = conn.transaction()?;
    let count = message_count(generation);
    {
        let mut session = tx.prepare(
            "INSERT INTO ZWACHATSESSION (Z_PK, Z_ENT, Z_OPT, ZARCHIVED, ZFLAGS, ZHIDDEN, ZMESSAGECOUNTER, ZREMOVED,
             ZSESSIONTYPE, ZUNREADCOUNT, ZCONTACTJID, ZPARTNERNAME) VALUES (?1, 3, 1, 0, ?2, 0, 0, 0, ?3, 0, ?4, ?5)",
        )?;
        for (i, (jid, name, kind)) in CHATS.iter().enumerate() {
            let flags = if *kind == 1 { 1280 } else { 1296 };
            session.execute(params![i as i64 + 1, flags, kind, jid, name])?;
        }
        let mut message = tx.prepare(
            "INSERT INTO ZWAMESSAGE (Z_PK, Z_ENT, Z_OPT, ZISFROMME, ZMESSAGESTATUS, ZMESSAGETYPE, ZSORT, ZSTARRED,
             ZCHATSESSION, ZMESSAGEDATE, ZSENTDATE, ZFROMJID, ZSTANZAID, ZTEXT, ZTOJID)
             VALUES (?1, 9, 1, ?2, ?3, 0, ?1, 0, ?4, ?5, ?5, ?6, ?7, ?8, ?9)",
        )?;
        let span = NEWEST_MESSAGE - OLDEST_MESSAGE;
        let base = i64::try_from(BASE_MESSAGES).unwrap_or(1).max(2);
        for n in 0..count {
            let n_i = i64::try_from(n).unwrap_or(i64::MAX);
            // Evenly spread from the oldest to the newest, with a little seeded jitter that keeps the order;
            // the messages of later changes come an hour apart after the newest.
            let date = if n < BASE_MESSAGES {
                let jitter = i64::try_from(mix(seed ^ n) % 600).unwrap_or(0);
                let at = OLDEST_MESSAGE + span * n_i / (base - 1);
                if n + 1 == BASE_MESSAGES {
                    at
                } else {
                    at - jitter
                }
            } else {
                NEWEST_MESSAGE + (n_i - base + 1) * 3600
            };
            let chat = usize::try_from(mix(seed.wrapping_add(n)) % CHATS.len() as u64).unwrap_or(0);
            let (jid, _, _) = CHATS[chat];
            let from_me = mix(seed ^ n.rotate_left(17)).is_multiple_of(2);
            let text = TEXTS
                [usize::try_from(mix(n ^ seed.rotate_left(7)) % TEXTS.len() as u64).unwrap_or(0)];
            let (from, to) = if from_me {
                (None, Some(jid))
            } else {
                (Some(jid), None)
            };
            message.execute(params![
                n_i + 1,
                from_me,
                if from_me { 13 } else { 8 },
                chat as i64 + 1,
                (date - APPLE_EPOCH) as f64,
                from,
                format!("3EB0{:016X}", mix(seed ^ n ^ 0x5a5a)),
                text,
                to,
            ])?;
        }
        tx.execute(
            "UPDATE ZWACHATSESSION SET
               ZMESSAGECOUNTER = (SELECT count(*) FROM ZWAMESSAGE m WHERE m.ZCHATSESSION = ZWACHATSESSION.Z_PK),
               ZLASTMESSAGE = (SELECT max(Z_PK) FROM ZWAMESSAGE m WHERE m.ZCHATSESSION = ZWACHATSESSION.Z_PK),
               ZLASTMESSAGEDATE = (SELECT max(ZMESSAGEDATE) FROM ZWAMESSAGE m WHERE m.ZCHATSESSION = ZWACHATSESSION.Z_PK)",
            [],
        )?;
        let mut key = tx.prepare(
            "INSERT INTO Z_PRIMARYKEY (Z_ENT, Z_NAME, Z_SUPER, Z_MAX) VALUES (?1, ?2, 0, ?3)",
        )?;
        key.execute(params![3, "WAChatSession", CHATS.len() as i64])?;
        key.execute(params![8, "WAMediaItem", 0])?;
        key.execute(params![
            9,
            "WAMessage",
            i64::try_from(count).unwrap_or(i64::MAX)
        ])?;
        tx.execute(
            "INSERT INTO Z_METADATA (Z_VERSION, Z_UUID, Z_PLIST) VALUES (1, ?1, NULL)",
            params![format!("{:016X}-SIM", mix(seed))],
        )?;
    }
    tx.commit()?;
    conn.close().map_err(|(_, e)| e)?;
    Ok(std::fs::read(&path)?)
}

/// SplitMix64's finaliser, for the seeded choices.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(bytes: &[u8]) -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("db");
        std::fs::write(&path, bytes).expect("write");
        let conn = Connection::open(&path).expect("open");
        (dir, conn)
    }

    #[test]
    fn real_rows_with_apple_epoch_dates() {
        let bytes = chat_storage(3, 0);
        assert!(bytes.starts_with(b"SQLite format 3\0"));
        let (_dir, conn) = open(&bytes);
        let (count, newest): (i64, f64) = conn
            .query_row(
                "SELECT count(*), max(ZMESSAGEDATE) FROM ZWAMESSAGE",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("query");
        assert_eq!(count, 312);
        assert_eq!(newest as i64 + APPLE_EPOCH, NEWEST_MESSAGE);
        let chats: i64 = conn
            .query_row(
                "SELECT count(*) FROM ZWACHATSESSION WHERE ZMESSAGECOUNTER > 0",
                [],
                |r| r.get(0),
            )
            .expect("query");
        assert!(chats >= 4, "{chats}");
        let ok: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("check");
        assert_eq!(ok, "ok");
    }

    #[test]
    fn a_change_adds_newer_messages_and_the_bytes_are_stable() {
        assert_eq!(chat_storage(3, 0), chat_storage(3, 0));
        let (_dir, conn) = open(&chat_storage(3, 2));
        let (count, newest): (i64, f64) = conn
            .query_row(
                "SELECT count(*), max(ZMESSAGEDATE) FROM ZWAMESSAGE",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("query");
        assert_eq!(count as u64, message_count(2));
        assert_eq!(newest as i64 + APPLE_EPOCH, newest_message(2));
    }
}

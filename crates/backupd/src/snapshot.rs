//! Reading a phone into the rules' [`Snapshot`]: the boundary where protocol types become plain facts.

use plist::{Dictionary, Value};

use backupd_mux::services::{DiagnosticsRelay, InstallationProxy};
use backupd_mux::{Lockdown, TransportError};
use backupd_proto::services::{self, diagnostics};
use backupd_rules::{
    App, Fact, PairingState, Snapshot, Source, Timestamp, UnknownReason, WifiState,
};

/// Seconds between the Unix epoch and Apple's reference date (2001-01-01), for dates sent as numbers.
const COCOA_EPOCH: i64 = 978_307_200;
/// The most user apps kept from a listing, whatever the phone sends.
const MAX_APPS: usize = 4096;

/// What the daemon shows besides the snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// `DeviceName`.
    pub name: Option<String>,
    /// `ProductType`.
    pub product_type: Option<String>,
    /// `ProductVersion`.
    pub product_version: Option<String>,
}

/// A snapshot of a phone the daemon could not open a session with, saying why.
pub fn untrusted(state: PairingState) -> Snapshot {
    let reason = match state {
        PairingState::PasscodeRequired => UnknownReason::DeviceLocked,
        _ => UnknownReason::NotPaired,
    };
    let mut snap = Snapshot::unread(reason);
    snap.pairing.set_known(state);
    snap
}

fn set<T>(fact: &mut Fact<T>, value: Option<T>) {
    match value {
        Some(v) => fact.set_known(v),
        None => fact.set_unknown(UnknownReason::NotReported),
    }
}

fn u64_of(d: &Dictionary, key: &str) -> Option<u64> {
    match d.get(key)? {
        Value::Integer(i) => i.as_unsigned(),
        Value::Real(r) if *r >= 0.0 && r.is_finite() => Some(*r as u64),
        _ => None,
    }
}

fn bool_of(d: &Dictionary, key: &str) -> Option<bool> {
    match d.get(key)? {
        Value::Boolean(b) => Some(*b),
        Value::Integer(i) => i.as_signed().map(|v| v != 0),
        _ => None,
    }
}

/// A date as lockdown sends it: a plist date, or seconds since 2001 as a number.
fn date_of(v: &Value) -> Option<Timestamp> {
    let secs = match v {
        Value::Date(d) => {
            let st: std::time::SystemTime = (*d).into();
            match st.duration_since(std::time::UNIX_EPOCH) {
                Ok(d) => i64::try_from(d.as_secs()).ok()?,
                Err(e) => -i64::try_from(e.duration().as_secs()).ok()?,
            }
        }
        Value::Real(r) if r.is_finite() => COCOA_EPOCH.checked_add(*r as i64)?,
        Value::Integer(i) => COCOA_EPOCH.checked_add(i.as_signed()?)?,
        _ => return None,
    };
    Some(Timestamp::from_unix_secs(secs))
}

async fn domain(ld: &mut Lockdown, name: &str) -> Result<Option<Dictionary>, TransportError> {
    match ld.get_value(Some(name), None).await {
        Ok(v) => Ok(v.and_then(Value::into_dictionary)),
        // A refused domain is a fact about this phone, not a failure of the connection.
        Err(e) if e.device_error().is_some() => Ok(None),
        Err(e) => Err(e),
    }
}

fn mark_failed<T>(fact: &mut Fact<T>) {
    fact.set_unknown(UnknownReason::QueryFailed);
}

/// Reads everything the rules look at from a trusted lockdown session.
///
/// A failure of the connection itself is returned; a value the phone does not report stays unknown with the
/// reason, so one missing key never hides the rest.
pub async fn read(ld: &mut Lockdown) -> Result<(Snapshot, Identity), TransportError> {
    let mut snap = Snapshot::unread(UnknownReason::NotReported);
    snap.pairing.set_known(PairingState::Paired);

    let root = ld
        .get_value(None, None)
        .await?
        .and_then(Value::into_dictionary)
        .unwrap_or_default();
    let text = |k: &str| root.get(k).and_then(Value::as_string).map(str::to_owned);
    let identity = Identity {
        name: text("DeviceName"),
        product_type: text("ProductType"),
        product_version: text("ProductVersion"),
    };
    set(&mut snap.product_type, identity.product_type.clone());
    set(&mut snap.product_version, identity.product_version.clone());

    match domain(ld, "com.apple.mobile.backup").await? {
        Some(b) => {
            set(&mut snap.will_encrypt, bool_of(&b, "WillEncrypt"));
            set(
                &mut snap.icloud_backup_enabled,
                bool_of(&b, "CloudBackupEnabled"),
            );
            // A phone that reports the domain but no date has never completed an iCloud backup.
            let last = b.get("LastCloudBackupDate").map(date_of);
            match last {
                Some(Some(ts)) => snap.last_icloud_backup.set_known(Some(ts)),
                Some(None) => snap
                    .last_icloud_backup
                    .set_unknown(UnknownReason::NotReported),
                None if b.contains_key("CloudBackupEnabled") => {
                    snap.last_icloud_backup.set_known(None)
                }
                None => snap
                    .last_icloud_backup
                    .set_unknown(UnknownReason::NotReported),
            }
        }
        None => {
            for f in [&mut snap.will_encrypt, &mut snap.icloud_backup_enabled] {
                f.set_unknown(UnknownReason::NotReported);
            }
        }
    }

    if let Some(b) = domain(ld, "com.apple.mobile.battery").await? {
        set(
            &mut snap.battery_level,
            u64_of(&b, "BatteryCurrentCapacity").and_then(|v| u8::try_from(v.min(100)).ok()),
        );
        set(&mut snap.battery_charging, bool_of(&b, "BatteryIsCharging"));
        set(&mut snap.external_power, bool_of(&b, "ExternalConnected"));
    }

    if let Some(d) = domain(ld, "com.apple.disk_usage").await? {
        set(&mut snap.disk_capacity, u64_of(&d, "TotalDiskCapacity"));
        set(&mut snap.data_capacity, u64_of(&d, "TotalDataCapacity"));
        set(&mut snap.data_available, u64_of(&d, "TotalDataAvailable"));
    }

    snap.wifi = read_wifi(ld).await;
    snap.apps = read_apps(ld).await;
    Ok((snap, identity))
}

async fn read_wifi(ld: &mut Lockdown) -> Fact<WifiState> {
    let mut fact = Fact::unknown(
        UnknownReason::QueryFailed,
        Source::io_registry(services::WIFI_ENTRY_NAME),
    );
    let entry = async {
        let mut diag = DiagnosticsRelay::start(ld).await?;
        let entry = diag.wifi_interface().await;
        diag.goodbye().await;
        entry
    }
    .await;
    match entry {
        Ok(Some(entry)) => {
            let state = diagnostics::wifi_state(&entry);
            fact.set_known(WifiState::new(state.associated, state.ssid));
        }
        Ok(None) => fact.set_unknown(UnknownReason::NotReported),
        Err(e) => {
            tracing::info!(error = %e, "could not read the Wi-Fi interface");
            mark_failed(&mut fact);
        }
    }
    fact
}

async fn read_apps(ld: &mut Lockdown) -> Fact<Vec<App>> {
    let mut fact = Fact::unknown(
        UnknownReason::QueryFailed,
        Source::installation_proxy("Browse"),
    );
    let listed = async {
        let mut proxy = InstallationProxy::start(ld).await?;
        proxy.browse_user_apps(MAX_APPS).await
    }
    .await;
    match listed {
        Ok(apps) => fact.set_known(
            apps.into_iter()
                .map(|a| {
                    let mut app = App::new(&a.bundle_id, a.version.as_deref());
                    match a.uses_icloud {
                        Some(v) => app.icloud_containers.set_known(v),
                        None => app
                            .icloud_containers
                            .set_unknown(UnknownReason::NotReported),
                    }
                    app
                })
                .collect(),
        ),
        Err(e) => tracing::info!(error = %e, "could not list apps"),
    }
    fact
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_come_as_plist_dates_or_cocoa_seconds() {
        let d = plist::Date::from_xml_format("2026-11-20T02:14:00Z").expect("date");
        assert_eq!(
            date_of(&Value::Date(d)).map(Timestamp::unix_secs),
            Some(1_795_140_840)
        );
        assert_eq!(
            date_of(&Value::Real(0.0)).map(Timestamp::unix_secs),
            Some(COCOA_EPOCH)
        );
        assert_eq!(date_of(&Value::String("x".into())), None);
    }

    #[test]
    fn untrusted_phone_reads_nothing_but_why() {
        let snap = untrusted(PairingState::PasscodeRequired);
        assert_eq!(snap.pairing.value(), Some(&PairingState::PasscodeRequired));
        assert_eq!(
            snap.wifi.unknown_reason(),
            Some(UnknownReason::DeviceLocked)
        );
    }
}

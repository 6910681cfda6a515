//! One simulated phone: lockdownd with real pairing and TLS sessions, and the services backupd reads.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use plist::{Dictionary, Value};
use rand::RngCore;
use tokio::sync::broadcast;

use backupd_proto::lockdown::{self as ld, DeviceError, Request};
use backupd_proto::mobilebackup2;
use backupd_proto::pair::{DeviceKey, PairRequestRecord};
use backupd_proto::plist_util::DictExt;
use backupd_proto::services::{self, diagnostics, instproxy, notification};
use backupd_proto::tls;

use crate::backup::{self, PhoneBackup};
use crate::profile::{Profile, TrustPolicy, WifiEntry};
use crate::wire::{DeviceConn, SimStream, read_plist, write_plist};

/// Root-domain keys a real phone answers before a session: what hosts read to decide how to pair.
const PRE_SESSION_KEYS: &[&str] = &[
    "BuildVersion",
    "DeviceClass",
    "DeviceName",
    "DevicePublicKey",
    "ProductName",
    "ProductType",
    "ProductVersion",
    "UniqueDeviceID",
    "WiFiAddress",
    "HardwareModel",
    "ActivationState",
    "PasswordProtected",
    "CPUArchitecture",
    "SerialNumber",
    "TimeZone",
];

/// Errors of the simulated phone's set-up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PhoneError {
    /// Key generation or loading failed.
    #[error("failed to prepare the device key")]
    Key(#[from] backupd_proto::pair::PairError),
    /// The state directory could not be used.
    #[error("failed to use the phone's state directory")]
    Io(#[from] std::io::Error),
}

/// A host the phone trusts.
#[derive(Debug, Clone)]
struct TrustedHost {
    record: PairRequestRecord,
    escrow_bag: Vec<u8>,
}

/// A service started by StartService, waiting for its connection.
#[derive(Debug, Clone)]
struct PendingService {
    name: String,
    tls_host: Option<String>,
}

#[derive(Debug)]
struct State {
    trusted: BTreeMap<String, TrustedHost>,
    locked: bool,
    pending_answered: u32,
    manual_decision: Option<bool>,
    services: HashMap<u16, PendingService>,
    next_port: u16,
    overrides: BTreeMap<(Option<String>, String), Value>,
    next_session: u64,
}

/// What the Trust dialog on the simulated screen is doing, for control commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustAnswer {
    /// Tap Trust.
    Trust,
    /// Tap Don't Trust.
    DontTrust,
}

/// A simulated phone.
#[derive(Debug)]
pub struct Phone {
    profile: Profile,
    key: DeviceKey,
    state: Mutex<State>,
    notifications: broadcast::Sender<String>,
    state_dir: Option<PathBuf>,
    backup: PhoneBackup,
}

impl Phone {
    /// Builds the phone; with a state directory its key and trusted hosts survive restarts, as on a real phone.
    pub fn new(profile: Profile, state_dir: Option<PathBuf>) -> Result<Arc<Self>, PhoneError> {
        let key = match &state_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                let path = dir.join("device-key.pem");
                match std::fs::read(&path) {
                    Ok(pem) => DeviceKey::from_pkcs8_pem(&pem)?,
                    Err(_) => {
                        let key = DeviceKey::generate()?;
                        write_private(&path, key.to_pkcs8_pem().as_bytes())?;
                        key
                    }
                }
            }
            None => DeviceKey::generate()?,
        };
        let trusted = state_dir
            .as_ref()
            .map(|d| load_trusted(&d.join("trusted-hosts.plist")))
            .unwrap_or_default();
        let (notifications, _) = broadcast::channel(64);
        let locked = profile.pairing.locked;
        let backup = PhoneBackup::new(&profile.backup, state_dir.as_deref());
        Ok(Arc::new(Self {
            profile,
            key,
            state: Mutex::new(State {
                trusted,
                locked,
                pending_answered: 0,
                manual_decision: None,
                services: HashMap::new(),
                next_port: 49152,
                overrides: BTreeMap::new(),
                next_session: 1,
            }),
            notifications,
            state_dir,
            backup,
        }))
    }

    /// The profile.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The UDID as the phone reports it.
    pub fn udid(&self) -> &str {
        &self.profile.identity.udid
    }

    /// The phone's backup side: its files, the passcode prompt, the last backup's report.
    pub fn backup(&self) -> &PhoneBackup {
        &self.backup
    }

    /// A lockdown value as the phone answers it now (`None` domain: the root domain).
    pub(crate) fn lockdown_value(&self, domain: Option<&str>, key: &str) -> Option<Value> {
        self.domain(domain).get(key).cloned()
    }

    /// Changes a lockdown value as `SetValue` would; a change in `com.apple.mobile.backup` is posted.
    pub(crate) fn set_lockdown_value(&self, domain: Option<&str>, key: &str, value: Value) {
        let backup_domain = domain == Some("com.apple.mobile.backup");
        self.state()
            .overrides
            .insert((domain.map(str::to_owned), key.to_owned()), value);
        if backup_domain {
            self.post_notification(services::BACKUP_DOMAIN_CHANGED);
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock is a simulator bug; keep serving the other phones.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Answers the Trust dialog (for `trust: manual` profiles).
    pub fn answer_trust(&self, answer: TrustAnswer) {
        self.state().manual_decision = Some(answer == TrustAnswer::Trust);
    }

    /// Locks or unlocks the screen.
    pub fn set_locked(&self, locked: bool) {
        self.state().locked = locked;
    }

    /// Forgets every trusted host, like Settings › General › Reset Location & Privacy.
    pub fn reset_trust(&self) {
        let mut st = self.state();
        st.trusted.clear();
        self.save_trusted(&st);
    }

    /// The HostIDs the phone trusts.
    pub fn trusted_hosts(&self) -> Vec<String> {
        self.state().trusted.keys().cloned().collect()
    }

    /// Posts a notification to every observer.
    pub fn post_notification(&self, name: &str) {
        let _ = self.notifications.send(name.to_owned());
    }

    fn save_trusted(&self, st: &State) {
        let Some(dir) = &self.state_dir else { return };
        let mut d = Dictionary::new();
        for (id, host) in &st.trusted {
            let mut h = Dictionary::new();
            h.insert(
                "PairRecord".into(),
                Value::Dictionary(host.record.to_dictionary()),
            );
            h.insert("EscrowBag".into(), Value::Data(host.escrow_bag.clone()));
            d.insert(id.clone(), Value::Dictionary(h));
        }
        let bytes = backupd_proto::plist_util::to_xml(&Value::Dictionary(d));
        if let Err(e) = write_private(&dir.join("trusted-hosts.plist"), &bytes) {
            tracing::warn!(error = %e, "failed to save trusted hosts");
        }
    }

    /// Whether a service connection is waiting on `port`.
    pub fn has_service_port(&self, port: u16) -> bool {
        self.state().services.contains_key(&port)
    }

    fn root_values(&self) -> Dictionary {
        let id = &self.profile.identity;
        let mut d = Dictionary::new();
        d.insert("ActivationState".into(), "Activated".into());
        d.insert("BuildVersion".into(), id.build_version.clone().into());
        d.insert("CPUArchitecture".into(), "arm64e".into());
        d.insert("DeviceClass".into(), "iPhone".into());
        d.insert("DeviceColor".into(), "1".into());
        d.insert("DeviceName".into(), id.device_name.clone().into());
        d.insert(
            "DevicePublicKey".into(),
            Value::Data(self.key.public_key_pkcs1_pem().into_bytes()),
        );
        d.insert("HardwareModel".into(), "D16AP".into());
        d.insert("HostAttached".into(), true.into());
        d.insert("PasswordProtected".into(), self.state().locked.into());
        d.insert("ProductName".into(), "iPhone OS".into());
        d.insert("ProductType".into(), id.product_type.clone().into());
        d.insert("ProductVersion".into(), id.product_version.clone().into());
        d.insert("SerialNumber".into(), id.serial_number.clone().into());
        d.insert("TelephonyCapability".into(), true.into());
        d.insert("TimeZone".into(), "Europe/Rome".into());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        d.insert("TimeIntervalSince1970".into(), Value::Real(now));
        d.insert("TrustedHostAttached".into(), true.into());
        d.insert("UniqueDeviceID".into(), id.udid.clone().into());
        d.insert("WiFiAddress".into(), id.wifi_address.clone().into());
        for (k, v) in self.profile.domain_values(None) {
            d.insert(k, v);
        }
        d
    }

    fn domain(&self, domain: Option<&str>) -> Dictionary {
        let mut d = match domain {
            None => self.root_values(),
            Some(name) => self.profile.domain_values(Some(name)),
        };
        for ((dom, key), v) in &self.state().overrides {
            if dom.as_deref() == domain {
                d.insert(key.clone(), v.clone());
            }
        }
        d
    }

    /// Serves a lockdownd connection until the host leaves.
    pub async fn serve_lockdown(self: Arc<Self>, stream: SimStream) {
        let mut conn = DeviceConn::Plain(stream);
        let mut session_host: Option<String> = None;
        loop {
            let value = match read_plist(&mut conn).await {
                Ok(Some(v)) => v,
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!(udid = self.udid(), error = %e, "lockdown connection ended");
                    return;
                }
            };
            let Some(dict) = value.as_dictionary() else {
                return;
            };
            let Ok(request) = Request::from_dict(dict) else {
                let name = dict.str_key("Request").unwrap_or("Unknown").to_owned();
                let reply = ld::reply_error(&name, &DeviceError::InvalidResponse);
                if write_plist(&mut conn, &reply).await.is_err() {
                    return;
                }
                continue;
            };
            tracing::debug!(
                udid = self.udid(),
                request = request.name(),
                "lockdown request"
            );
            let name = request.name();
            match request {
                Request::StartSession { host_id, .. } => {
                    let host = self.state().trusted.get(&host_id).cloned();
                    let Some(host) = host else {
                        if write_plist(
                            &mut conn,
                            &ld::reply_error(name, &DeviceError::InvalidHostID),
                        )
                        .await
                        .is_err()
                        {
                            return;
                        }
                        continue;
                    };
                    let session_id = {
                        let mut st = self.state();
                        st.next_session += 1;
                        format!("{:08X}-SIM-SESSION-{:04}", st.next_session, st.next_session)
                    };
                    let mut f = Dictionary::new();
                    f.insert("SessionID".into(), session_id.into());
                    f.insert("EnableSessionSSL".into(), true.into());
                    if write_plist(&mut conn, &ld::reply_ok(name, f))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    let DeviceConn::Plain(raw) = conn else { return };
                    match self.accept_tls(raw, &host).await {
                        Some(tls) => conn = DeviceConn::Tls(Box::new(tls)),
                        None => return,
                    }
                    session_host = Some(host_id);
                }
                Request::StopSession { .. } => {
                    if write_plist(&mut conn, &ld::reply_ok(name, Dictionary::new()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    session_host = None;
                    // libimobiledevice sends close_notify and goes on in plaintext on the same socket; the
                    // phone must not answer with its own alert, which the host would read as a frame.
                    if let DeviceConn::Tls(tls) = conn {
                        let (raw, _) = tls.into_inner();
                        conn = DeviceConn::Plain(raw);
                    }
                }
                Request::Goodbye => {
                    let _ = write_plist(&mut conn, &ld::reply_ok(name, Dictionary::new())).await;
                    return;
                }
                other => {
                    let reply = self.handle(other, session_host.as_deref());
                    if write_plist(&mut conn, &reply).await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    async fn accept_tls(
        &self,
        raw: SimStream,
        host: &TrustedHost,
    ) -> Option<tokio_rustls::server::TlsStream<SimStream>> {
        let config = self.server_config(host)?;
        match tokio_rustls::TlsAcceptor::from(config).accept(raw).await {
            Ok(tls) => Some(tls),
            Err(e) => {
                tracing::info!(udid = self.udid(), error = %e, "TLS handshake with host failed");
                None
            }
        }
    }

    fn server_config(&self, host: &TrustedHost) -> Option<Arc<rustls::ServerConfig>> {
        let build = || -> Result<_, Box<dyn std::error::Error>> {
            let identity = if self.profile.faults.impostor_tls {
                impostor_identity()?
            } else {
                self.key
                    .tls_identity(host.record.device_certificate_der()?)?
            };
            Ok(tls::device_server_config(
                identity,
                host.record.trusted_client_certificates()?,
            )?)
        };
        match build() {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(udid = self.udid(), error = %e, "cannot build the TLS server config");
                None
            }
        }
    }

    fn handle(&self, request: Request, session: Option<&str>) -> Value {
        let name = request.name();
        let err = |e: DeviceError| ld::reply_error(name, &e);
        match request {
            Request::QueryType => {
                let mut f = Dictionary::new();
                f.insert("Type".into(), ld::LOCKDOWN_TYPE.into());
                ld::reply_ok(name, f)
            }
            Request::GetValue { domain, key } => {
                if session.is_none() && domain.is_some() {
                    return err(DeviceError::GetProhibited);
                }
                let mut values = self.domain(domain.as_deref());
                if session.is_none() {
                    values.retain(|k, _| PRE_SESSION_KEYS.contains(&k.as_str()));
                }
                let mut f = Dictionary::new();
                if let Some(d) = &domain {
                    f.insert("Domain".into(), d.clone().into());
                }
                match key {
                    Some(k) => {
                        let Some(v) = values.get(&k).cloned() else {
                            return err(DeviceError::MissingValue);
                        };
                        f.insert("Key".into(), k.into());
                        f.insert("Value".into(), v);
                    }
                    None => {
                        f.insert("Value".into(), Value::Dictionary(values));
                    }
                }
                ld::reply_ok(name, f)
            }
            Request::SetValue { domain, key, value } => {
                if session.is_none() {
                    return err(DeviceError::SessionInactive);
                }
                let backup_domain = domain.as_deref() == Some("com.apple.mobile.backup");
                self.state().overrides.insert((domain, key), value);
                if backup_domain {
                    self.post_notification(services::BACKUP_DOMAIN_CHANGED);
                }
                ld::reply_ok(name, Dictionary::new())
            }
            Request::RemoveValue { domain, key } => {
                if session.is_none() {
                    return err(DeviceError::SessionInactive);
                }
                self.state().overrides.remove(&(domain, key));
                ld::reply_ok(name, Dictionary::new())
            }
            Request::Pair { record, .. } => self.pair(&record),
            Request::ValidatePair { record } => match PairRequestRecord::from_dictionary(&record) {
                Ok(r) if self.state().trusted.contains_key(&r.host_id) => {
                    ld::reply_ok(name, Dictionary::new())
                }
                _ => err(DeviceError::InvalidHostID),
            },
            Request::Unpair { record } => {
                let Some(host_id) = record.str_key("HostID").map(str::to_owned) else {
                    return err(DeviceError::InvalidPairRecord);
                };
                let mut st = self.state();
                if st.trusted.remove(&host_id).is_none() {
                    return err(DeviceError::InvalidHostID);
                }
                self.save_trusted(&st);
                ld::reply_ok(name, Dictionary::new())
            }
            Request::StartService {
                service,
                escrow_bag,
                ..
            } => {
                let Some(host) = session else {
                    return err(DeviceError::InvalidService);
                };
                let known = [
                    services::DIAGNOSTICS_RELAY,
                    services::INSTALLATION_PROXY,
                    services::NOTIFICATION_PROXY,
                    "com.apple.iosdiagnostics.relay",
                    mobilebackup2::SERVICE_NAME,
                    mobilebackup2::AFC_SERVICE_NAME,
                    backup::SPRINGBOARD_SERVICE,
                ];
                if !known.contains(&service.as_str()) {
                    return err(DeviceError::InvalidService);
                }
                // Backups need the data-protection keys the host's escrow bag unlocks.
                if service == mobilebackup2::SERVICE_NAME {
                    let bag_ok =
                        self.state().trusted.get(host).is_some_and(|h| {
                            escrow_bag.as_deref() == Some(h.escrow_bag.as_slice())
                        });
                    if !bag_ok {
                        return err(DeviceError::EscrowLocked);
                    }
                }
                let ssl = self.profile.services.ssl;
                let port = {
                    let mut st = self.state();
                    let port = st.next_port;
                    st.next_port = if port >= 65000 { 49152 } else { port + 1 };
                    st.services.insert(
                        port,
                        PendingService {
                            name: service.clone(),
                            tls_host: ssl.then(|| host.to_owned()),
                        },
                    );
                    port
                };
                let mut f = Dictionary::new();
                f.insert("Port".into(), u64::from(port).into());
                f.insert("Service".into(), service.into());
                if ssl {
                    f.insert("EnableServiceSSL".into(), true.into());
                }
                ld::reply_ok(name, f)
            }
            // Handled by the connection loop.
            Request::StartSession { .. } | Request::StopSession { .. } | Request::Goodbye => {
                err(DeviceError::InvalidResponse)
            }
            _ => err(DeviceError::InvalidResponse),
        }
    }

    fn pair(&self, record: &Dictionary) -> Value {
        let name = "Pair";
        let Ok(request) = PairRequestRecord::from_dictionary(record) else {
            return ld::reply_error(name, &DeviceError::InvalidPairRecord);
        };
        // The device certificate must certify this phone's key, or TLS could never work.
        if self
            .key
            .tls_identity(match request.device_certificate_der() {
                Ok(c) => c,
                Err(_) => return ld::reply_error(name, &DeviceError::InvalidPairRecord),
            })
            .is_err()
        {
            return ld::reply_error(name, &DeviceError::InvalidPairRecord);
        }
        let mut st = self.state();
        if st.locked {
            return ld::reply_error(name, &DeviceError::PasswordProtected);
        }
        if let Some(host) = st.trusted.get(&request.host_id) {
            return pair_ok(&host.escrow_bag);
        }
        let pairing = &self.profile.pairing;
        let accept = match pairing.trust {
            TrustPolicy::Accept | TrustPolicy::Deny
                if st.pending_answered < pairing.pending_prompts =>
            {
                st.pending_answered += 1;
                None
            }
            TrustPolicy::Accept => Some(true),
            TrustPolicy::Deny => Some(false),
            TrustPolicy::Manual => st.manual_decision.take(),
        };
        match accept {
            None => ld::reply_error(name, &DeviceError::PairingDialogResponsePending),
            Some(false) => {
                st.pending_answered = 0;
                ld::reply_error(name, &DeviceError::UserDeniedPairing)
            }
            Some(true) => {
                st.pending_answered = 0;
                let mut escrow_bag = vec![0u8; 32];
                rand::thread_rng().fill_bytes(&mut escrow_bag);
                let host_id = request.host_id.clone();
                st.trusted.insert(
                    host_id.clone(),
                    TrustedHost {
                        record: request,
                        escrow_bag: escrow_bag.clone(),
                    },
                );
                self.save_trusted(&st);
                tracing::info!(udid = self.udid(), host_id, "trusted a new host");
                pair_ok(&escrow_bag)
            }
        }
    }

    /// Serves a connection to a port StartService handed out.
    pub async fn serve_service(self: Arc<Self>, port: u16, stream: SimStream) {
        let Some(pending) = self.state().services.remove(&port) else {
            return;
        };
        let conn = match pending
            .tls_host
            .as_ref()
            .and_then(|h| self.state().trusted.get(h).cloned())
        {
            Some(host) => match self.accept_tls(stream, &host).await {
                Some(tls) => DeviceConn::Tls(Box::new(tls)),
                None => return,
            },
            None if pending.tls_host.is_some() => return,
            None => DeviceConn::Plain(stream),
        };
        let result = match pending.name.as_str() {
            services::DIAGNOSTICS_RELAY | "com.apple.iosdiagnostics.relay" => {
                self.serve_diagnostics(conn).await
            }
            services::INSTALLATION_PROXY => self.serve_instproxy(conn).await,
            services::NOTIFICATION_PROXY => self.serve_notifications(conn).await,
            mobilebackup2::SERVICE_NAME => backup::serve_mobilebackup2(&self, conn).await,
            mobilebackup2::AFC_SERVICE_NAME => backup::serve_afc(&self, conn).await,
            backup::SPRINGBOARD_SERVICE => backup::serve_springboard(&self, conn).await,
            _ => Ok(()),
        };
        if let Err(e) = result {
            tracing::debug!(udid = self.udid(), service = pending.name, error = %e, "service connection ended");
        }
    }

    fn wifi_entry(
        &self,
        entry_name: Option<&str>,
        entry_class: Option<&str>,
    ) -> Option<Dictionary> {
        let wifi = &self.profile.wifi;
        let matches = match wifi.entry {
            WifiEntry::AppleBCMWLANSkywalkInterface => {
                entry_name == Some(services::WIFI_ENTRY_NAME)
                    || entry_class == Some(services::WIFI_ENTRY_NAME)
            }
            WifiEntry::IO80211Interface => entry_class == Some(services::WIFI_ENTRY_CLASS),
            WifiEntry::None => false,
        };
        if !matches {
            return None;
        }
        let mut d = Dictionary::new();
        d.insert("IOInterfaceName".into(), "en0".into());
        d.insert("IOInterfaceUnit".into(), 0u64.into());
        let mac: Vec<u8> = self
            .profile
            .identity
            .wifi_address
            .split(':')
            .filter_map(|h| u8::from_str_radix(h, 16).ok())
            .collect();
        d.insert("IOMACAddress".into(), Value::Data(mac));
        d.insert("IO80211InterfaceRole".into(), "Infrastructure".into());
        d.insert("IO80211CountryCode".into(), "IT".into());
        if wifi.associated {
            d.insert(
                "IO80211SSID".into(),
                wifi.ssid.clone().unwrap_or_else(|| "Wi-Fi".into()).into(),
            );
            d.insert(
                "IO80211BSSID".into(),
                Value::Data(vec![0x1c, 0xed, 0x6f, 0x12, 0x34, 0x56]),
            );
            d.insert("IO80211Channel".into(), 36u64.into());
            d.insert("IO80211Band".into(), "5 GHz".into());
            d.insert("IO80211ChannelFrequency".into(), 5180u64.into());
        }
        Some(d)
    }

    fn battery_entry(&self) -> Dictionary {
        let b = self.domain(Some("com.apple.mobile.battery"));
        let mut d = Dictionary::new();
        if let Some(v) = b.get("BatteryCurrentCapacity") {
            d.insert("CurrentCapacity".into(), v.clone());
        }
        if let Some(v) = b.get("BatteryIsCharging") {
            d.insert("IsCharging".into(), v.clone());
        }
        if let Some(v) = b.get("ExternalConnected") {
            d.insert("ExternalConnected".into(), v.clone());
        }
        if let Some(v) = b.get("FullyCharged") {
            d.insert("FullyCharged".into(), v.clone());
        }
        d.insert("IOClass".into(), "AppleSmartBattery".into());
        d.insert("CycleCount".into(), 412u64.into());
        d.insert("DesignCapacity".into(), 3227u64.into());
        d.insert("FullChargeCapacity".into(), 100u64.into());
        d
    }

    async fn serve_diagnostics(&self, mut conn: DeviceConn) -> std::io::Result<()> {
        while let Some(value) = read_plist(&mut conn).await? {
            let Some(dict) = value.as_dictionary() else {
                break;
            };
            let Ok(request) = diagnostics::Request::from_dict(dict) else {
                let mut d = Dictionary::new();
                d.insert("Status".into(), "UnknownRequest".into());
                write_plist(&mut conn, &Value::Dictionary(d)).await?;
                continue;
            };
            let reply = match request {
                diagnostics::Request::IoRegistry {
                    entry_name,
                    entry_class,
                    ..
                } => {
                    let entry = self
                        .wifi_entry(entry_name.as_deref(), entry_class.as_deref())
                        .or_else(|| {
                            let battery = entry_class.as_deref()
                                == Some(services::BATTERY_ENTRY_CLASS)
                                || entry_name.as_deref() == Some("AppleSmartBattery")
                                || entry_class.as_deref() == Some("AppleSmartBattery");
                            battery.then(|| self.battery_entry())
                        });
                    diagnostics::ioregistry_reply(entry.as_ref())
                }
                diagnostics::Request::MobileGestalt { .. } => {
                    let mut mg = Dictionary::new();
                    mg.insert("Status".into(), "MobileGestaltDeprecated".into());
                    let mut diag = Dictionary::new();
                    diag.insert("MobileGestalt".into(), Value::Dictionary(mg));
                    let mut d = Dictionary::new();
                    d.insert("Diagnostics".into(), Value::Dictionary(diag));
                    d.insert("Status".into(), "Success".into());
                    Value::Dictionary(d)
                }
                diagnostics::Request::Report(kind) => {
                    let mut diag = Dictionary::new();
                    let mut wifi = Dictionary::new();
                    // Real phones always answer Active: NO here, whatever the Wi-Fi state.
                    wifi.insert("Active".into(), "NO".into());
                    wifi.insert("Status".into(), "Success".into());
                    let mut gas = self.battery_entry();
                    gas.insert("Status".into(), "Success".into());
                    match kind.as_str() {
                        "WiFi" => {
                            diag.insert("WiFi".into(), Value::Dictionary(wifi));
                        }
                        "GasGauge" => {
                            diag.insert("GasGauge".into(), Value::Dictionary(gas));
                        }
                        "All" => {
                            diag.insert("WiFi".into(), Value::Dictionary(wifi));
                            diag.insert("GasGauge".into(), Value::Dictionary(gas));
                        }
                        _ => {}
                    }
                    let mut d = Dictionary::new();
                    d.insert("Diagnostics".into(), Value::Dictionary(diag));
                    d.insert(
                        "Status".into(),
                        if ["WiFi", "GasGauge", "All", "NAND", "HDMI"].contains(&kind.as_str()) {
                            "Success"
                        } else {
                            "UnknownRequest"
                        }
                        .into(),
                    );
                    Value::Dictionary(d)
                }
                diagnostics::Request::Goodbye => {
                    let mut d = Dictionary::new();
                    d.insert("Status".into(), "Success".into());
                    write_plist(&mut conn, &Value::Dictionary(d)).await?;
                    break;
                }
                _ => continue,
            };
            write_plist(&mut conn, &reply).await?;
        }
        Ok(())
    }

    async fn serve_instproxy(&self, mut conn: DeviceConn) -> std::io::Result<()> {
        while let Some(value) = read_plist(&mut conn).await? {
            let Some(dict) = value.as_dictionary() else {
                break;
            };
            match instproxy::Request::from_dict(dict) {
                Ok(instproxy::Request::Lookup {
                    bundle_ids,
                    attributes,
                }) => {
                    let mut result = Dictionary::new();
                    for app in &self.profile.apps {
                        if bundle_ids.is_empty() || bundle_ids.contains(&app.bundle_id) {
                            let attrs = instproxy::select_attributes(
                                &Profile::app_attributes(app),
                                &attributes,
                            );
                            result.insert(app.bundle_id.clone(), Value::Dictionary(attrs));
                        }
                    }
                    let mut d = Dictionary::new();
                    d.insert("LookupResult".into(), Value::Dictionary(result));
                    d.insert("Status".into(), "Complete".into());
                    write_plist(&mut conn, &Value::Dictionary(d)).await?;
                }
                Ok(instproxy::Request::Browse {
                    application_type,
                    attributes,
                }) => {
                    let apps: Vec<Value> = if application_type == "System" {
                        Vec::new()
                    } else {
                        self.profile
                            .apps
                            .iter()
                            .map(|a| {
                                Value::Dictionary(instproxy::select_attributes(
                                    &Profile::app_attributes(a),
                                    &attributes,
                                ))
                            })
                            .collect()
                    };
                    let total = apps.len() as u64;
                    // Real phones page the listing; a small page size exercises the hosts' paging.
                    for (i, page) in apps.chunks(2).enumerate() {
                        let mut d = Dictionary::new();
                        d.insert("CurrentAmount".into(), (page.len() as u64).into());
                        d.insert("CurrentIndex".into(), (i as u64 * 2).into());
                        d.insert("CurrentList".into(), Value::Array(page.to_vec()));
                        d.insert("Status".into(), "BrowsingApplications".into());
                        d.insert("Total".into(), total.into());
                        write_plist(&mut conn, &Value::Dictionary(d)).await?;
                    }
                    let mut d = Dictionary::new();
                    d.insert("Status".into(), "Complete".into());
                    write_plist(&mut conn, &Value::Dictionary(d)).await?;
                }
                _ => {
                    let mut d = Dictionary::new();
                    d.insert("Error".into(), "UnknownCommand".into());
                    write_plist(&mut conn, &Value::Dictionary(d)).await?;
                }
            }
        }
        Ok(())
    }

    async fn serve_notifications(&self, mut conn: DeviceConn) -> std::io::Result<()> {
        let mut posted = self.notifications.subscribe();
        let mut observed: Vec<String> = Vec::new();
        loop {
            tokio::select! {
                value = read_plist(&mut conn) => {
                    let Some(value) = value? else { return Ok(()) };
                    let Some(dict) = value.as_dictionary() else { return Ok(()) };
                    match notification::Request::from_dict(dict) {
                        Ok(notification::Request::Observe(name)) => observed.push(name),
                        Ok(notification::Request::Post(name)) => self.post_notification(&name),
                        Ok(notification::Request::Shutdown) => {
                            write_plist(&mut conn, &Value::Dictionary(notification::Event::ProxyDeath.to_dict())).await?;
                            return Ok(());
                        }
                        _ => {}
                    }
                }
                name = posted.recv() => {
                    match name {
                        Ok(name) if observed.contains(&name) => {
                            let event = notification::Event::Relay(name);
                            write_plist(&mut conn, &Value::Dictionary(event.to_dict())).await?;
                        }
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return Ok(()),
                    }
                }
            }
        }
    }
}

/// A self-signed identity with a key that is not the phone's.
fn impostor_identity() -> Result<tls::DeviceIdentity, Box<dyn std::error::Error>> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)?;
    let cert = rcgen::CertificateParams::new(Vec::<String>::new())?.self_signed(&key)?;
    let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    Ok(tls::DeviceIdentity::new(vec![cert.der().clone()], der))
}

fn pair_ok(escrow_bag: &[u8]) -> Value {
    let mut f = Dictionary::new();
    f.insert("EscrowBag".into(), Value::Data(escrow_bag.to_vec()));
    ld::reply_ok("Pair", f)
}

fn load_trusted(path: &std::path::Path) -> BTreeMap<String, TrustedHost> {
    let mut out = BTreeMap::new();
    let Ok(bytes) = std::fs::read(path) else {
        return out;
    };
    let Ok(Value::Dictionary(d)) = backupd_proto::plist_util::parse(&bytes) else {
        return out;
    };
    for (id, v) in d {
        let Some(h) = v.as_dictionary() else { continue };
        let (Some(rec), Some(bag)) = (h.dict_key("PairRecord"), h.data_key("EscrowBag")) else {
            continue;
        };
        if let Ok(record) = PairRequestRecord::from_dictionary(rec) {
            out.insert(
                id,
                TrustedHost {
                    record,
                    escrow_bag: bag.to_vec(),
                },
            );
        }
    }
    out
}

/// Writes a file readable by its owner only, replacing it atomically.
pub(crate) fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

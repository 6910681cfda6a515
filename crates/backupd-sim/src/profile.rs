//! A simulated phone's profile: a TOML file documented in `docs/simulator.md`.

use std::collections::BTreeMap;
use std::path::Path;

use plist::{Dictionary, Value};
use serde::Deserialize;

/// Errors reading a profile.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The file could not be read.
    #[error("failed to read profile {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TOML is invalid or does not match the schema.
    #[error("failed to parse profile {path}")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: toml::de::Error,
    },
    /// A value cannot be represented.
    #[error("profile {path}: {what}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        what: String,
    },
}

/// The example profiles shipped with the simulator, by name: usable as `--profile NAME`.
pub const BUILTIN: &[(&str, &str)] = &[
    ("healthy", include_str!("../profiles/healthy.toml")),
    (
        "wifi-off-no-charger",
        include_str!("../profiles/wifi-off-no-charger.toml"),
    ),
    (
        "icloud-full-whatsapp",
        include_str!("../profiles/icloud-full-whatsapp.toml"),
    ),
];

/// A built-in profile by name.
pub fn builtin(name: &str) -> Option<Profile> {
    let (_, text) = BUILTIN.iter().find(|(n, _)| *n == name)?;
    Profile::parse(text, name).ok()
}

/// A phone's profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Who the phone is.
    pub identity: Identity,
    /// How it answers the Trust dialog.
    #[serde(default)]
    pub pairing: Pairing,
    /// Lockdown values by domain: `root` for the root domain, else the domain name.
    #[serde(default)]
    pub lockdown: BTreeMap<String, toml::Table>,
    /// What the Wi-Fi interface's IORegistry entry says.
    #[serde(default)]
    pub wifi: Wifi,
    /// Installed user apps.
    #[serde(default)]
    pub apps: Vec<App>,
    /// Service behaviour.
    #[serde(default)]
    pub services: Services,
    /// Misbehaviour to inject, for tests.
    #[serde(default)]
    pub faults: Faults,
    /// What a backup of the phone holds, and how its backup service misbehaves.
    #[serde(default)]
    pub backup: crate::backup::BackupProfile,
}

/// Faults a profile can inject.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Present a TLS key other than the phone's own, as an impostor between host and phone would: a host
    /// that pins the device key must refuse the session.
    #[serde(default)]
    pub impostor_tls: bool,
}

/// Identity values of the root domain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// UniqueDeviceID, in either format (40 hex, or 8-16 with a dash).
    pub udid: String,
    /// DeviceName.
    pub device_name: String,
    /// ProductType, e.g. `iPhone14,5`.
    pub product_type: String,
    /// ProductVersion, e.g. `17.5.1`.
    pub product_version: String,
    /// BuildVersion, e.g. `21F90`.
    pub build_version: String,
    /// SerialNumber.
    #[serde(default = "default_serial")]
    pub serial_number: String,
    /// WiFiAddress (MAC).
    #[serde(default = "default_wifi_mac")]
    pub wifi_address: String,
    /// USB product id reported by the muxer.
    #[serde(default = "default_product_id")]
    pub usb_product_id: u16,
}

fn default_serial() -> String {
    "F2LZK0ABCDEF".into()
}
fn default_wifi_mac() -> String {
    "a4:c3:f0:12:34:56".into()
}
fn default_product_id() -> u16 {
    0x12a8
}

/// How the phone answers a `Pair` request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrustPolicy {
    /// Tap Trust (after `pending_prompts` pending answers).
    #[default]
    Accept,
    /// Tap Don't Trust.
    Deny,
    /// Leave the dialog up until a control command answers it.
    Manual,
}

/// Pairing behaviour.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pairing {
    /// What the person does when the Trust dialog shows.
    #[serde(default)]
    pub trust: TrustPolicy,
    /// How many `Pair` requests are answered `PairingDialogResponsePending` before `trust` applies.
    #[serde(default)]
    pub pending_prompts: u32,
    /// Whether the phone starts passcode-locked: `Pair` answers `PasswordProtected` until unlocked.
    #[serde(default)]
    pub locked: bool,
}

/// Where the Wi-Fi interface is in the IORegistry, as iOS versions differ.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum WifiEntry {
    /// `AppleBCMWLANSkywalkInterface` by name (current iPhones).
    #[default]
    AppleBCMWLANSkywalkInterface,
    /// Class `IO80211Interface` only (older iPhones).
    IO80211Interface,
    /// No Wi-Fi entry at all.
    None,
}

/// The Wi-Fi interface.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wifi {
    /// Where the entry is.
    #[serde(default)]
    pub entry: WifiEntry,
    /// Whether the phone is associated with a network.
    #[serde(default = "yes")]
    pub associated: bool,
    /// The network name when associated.
    #[serde(default)]
    pub ssid: Option<String>,
}

fn yes() -> bool {
    true
}

impl Default for Wifi {
    fn default() -> Self {
        Self {
            entry: WifiEntry::default(),
            associated: true,
            ssid: Some("Home".into()),
        }
    }
}

/// An installed app.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    /// CFBundleIdentifier.
    pub bundle_id: String,
    /// CFBundleDisplayName.
    pub name: String,
    /// CFBundleShortVersionString.
    pub version: String,
    /// Entitlements, as installation_proxy returns them.
    #[serde(default)]
    pub entitlements: toml::Table,
}

/// Service behaviour.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Services {
    /// Whether StartService answers `EnableServiceSSL: true` (over USB real phones usually do not).
    #[serde(default)]
    pub ssl: bool,
}

impl Profile {
    /// Reads and checks a profile file.
    pub fn load(path: &Path) -> Result<Self, ProfileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, &shown)
    }

    /// Parses and checks a profile; `name` is used in errors.
    pub fn parse(text: &str, name: &str) -> Result<Self, ProfileError> {
        let profile: Self = toml::from_str(text).map_err(|source| ProfileError::Parse {
            path: name.into(),
            source,
        })?;
        let invalid = |what: String| ProfileError::Invalid {
            path: name.into(),
            what,
        };
        let hex = profile.identity.udid.chars().filter(|c| *c != '-').count();
        if !(hex == 40 || hex == 24)
            || !profile
                .identity
                .udid
                .chars()
                .all(|c| c == '-' || c.is_ascii_hexdigit())
        {
            return Err(invalid(format!(
                "udid {:?} is neither 40 hex nor 8-16 hex",
                profile.identity.udid
            )));
        }
        for (domain, table) in &profile.lockdown {
            for (key, value) in table {
                toml_to_plist(value)
                    .map_err(|e| invalid(format!("lockdown.{domain}.{key}: {e}")))?;
            }
        }
        profile.backup.validate().map_err(invalid)?;
        let will_encrypt = profile
            .lockdown
            .get("com.apple.mobile.backup")
            .and_then(|t| t.get("WillEncrypt"))
            .and_then(toml::Value::as_bool)
            == Some(true);
        if will_encrypt && profile.backup.password.is_none() {
            // A phone that encrypts has a backup password: it encrypts every file with keys sealed by it.
            return Err(invalid(
                "WillEncrypt is true, so backup.password must be set".into(),
            ));
        }
        for app in &profile.apps {
            for (key, value) in &app.entitlements {
                toml_to_plist(value)
                    .map_err(|e| invalid(format!("{}: {key}: {e}", app.bundle_id)))?;
            }
        }
        Ok(profile)
    }

    /// The lockdown values of a domain (`None` for the root domain) as the profile sets them.
    pub fn domain_values(&self, domain: Option<&str>) -> Dictionary {
        let table = self.lockdown.get(domain.unwrap_or("root"));
        let mut d = Dictionary::new();
        if let Some(table) = table {
            for (k, v) in table {
                if let Ok(v) = toml_to_plist(v) {
                    d.insert(k.clone(), v);
                }
            }
        }
        d
    }

    /// The app's attributes as installation_proxy returns them.
    pub fn app_attributes(app: &App) -> Dictionary {
        let mut d = Dictionary::new();
        d.insert("ApplicationType".into(), "User".into());
        d.insert("CFBundleIdentifier".into(), app.bundle_id.clone().into());
        d.insert("CFBundleDisplayName".into(), app.name.clone().into());
        d.insert("CFBundleName".into(), app.name.clone().into());
        d.insert(
            "CFBundleShortVersionString".into(),
            app.version.clone().into(),
        );
        d.insert("CFBundleVersion".into(), app.version.clone().into());
        let mut ent = Dictionary::new();
        for (k, v) in &app.entitlements {
            if let Ok(v) = toml_to_plist(v) {
                ent.insert(k.clone(), v);
            }
        }
        d.insert("Entitlements".into(), Value::Dictionary(ent));
        let container = format!(
            "/private/var/mobile/Containers/Data/Application/{}",
            app.bundle_id
        );
        d.insert("Container".into(), container.into());
        d.insert(
            "Path".into(),
            format!(
                "/private/var/containers/Bundle/Application/{}/{}.app",
                app.bundle_id, app.name
            )
            .into(),
        );
        d
    }
}

/// Converts a TOML value to a plist value: a datetime becomes a date, a string `base64:…` becomes data, and a
/// string `hours-ago:N` becomes the date N hours before the profile is read (a phone that "backed up last night"
/// stays so whatever day the tests run).
pub fn toml_to_plist(v: &toml::Value) -> Result<Value, String> {
    Ok(match v {
        toml::Value::String(s) => match (s.strip_prefix("base64:"), s.strip_prefix("hours-ago:")) {
            (Some(b64), _) => Value::Data(decode_base64(b64).ok_or("invalid base64")?),
            (_, Some(hours)) => {
                let hours: u64 = hours
                    .parse()
                    .map_err(|_| format!("{s}: hours-ago needs a whole number of hours"))?;
                let at = std::time::SystemTime::now()
                    .checked_sub(std::time::Duration::from_secs(hours.saturating_mul(3600)))
                    .ok_or_else(|| format!("{s}: too long ago"))?;
                Value::Date(plist::Date::from(at))
            }
            _ => Value::String(s.clone()),
        },
        toml::Value::Integer(i) => Value::Integer((*i).into()),
        toml::Value::Float(f) => Value::Real(*f),
        toml::Value::Boolean(b) => Value::Boolean(*b),
        toml::Value::Datetime(dt) => {
            let text = dt.to_string();
            let date = plist::Date::from_xml_format(&text).map_err(|_| {
                format!("date {text} must be a full UTC time like 2024-05-01T02:00:00Z")
            })?;
            Value::Date(date)
        }
        toml::Value::Array(a) => {
            Value::Array(a.iter().map(toml_to_plist).collect::<Result<_, _>>()?)
        }
        toml::Value::Table(t) => {
            let mut d = Dictionary::new();
            for (k, v) in t {
                d.insert(k.clone(), toml_to_plist(v)?);
            }
            Value::Dictionary(d)
        }
    })
}

fn decode_base64(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=') {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

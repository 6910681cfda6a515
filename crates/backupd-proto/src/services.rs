//! Lockdown services backupd reads: diagnostics_relay, installation_proxy and notification_proxy.
//!
//! Each service speaks the lockdown framing ([`crate::lockdown::encode_frame`]) over its own connection.
//! This module gives the requests and typed readings of the replies, for both sides: the host parses what
//! the device says, and the simulator parses what hosts ask.

use plist::{Dictionary, Value};

use crate::plist_util::DictExt;

/// Service name of diagnostics_relay.
pub const DIAGNOSTICS_RELAY: &str = "com.apple.mobile.diagnostics_relay";
/// Service name of installation_proxy.
pub const INSTALLATION_PROXY: &str = "com.apple.mobile.installation_proxy";
/// Service name of notification_proxy.
pub const NOTIFICATION_PROXY: &str = "com.apple.mobile.notification_proxy";
/// The IORegistry entry name of the Wi-Fi interface on current iPhones.
pub const WIFI_ENTRY_NAME: &str = "AppleBCMWLANSkywalkInterface";
/// The IORegistry class of the Wi-Fi interface on older iPhones, tried when the name is not found.
pub const WIFI_ENTRY_CLASS: &str = "IO80211Interface";
/// The IORegistry class of the battery.
pub const BATTERY_ENTRY_CLASS: &str = "IOPMPowerSource";
/// WhatsApp's bundle id.
pub const WHATSAPP_BUNDLE_ID: &str = "net.whatsapp.WhatsApp";
/// Posted by the device when a value of `com.apple.mobile.backup` changes.
pub const BACKUP_DOMAIN_CHANGED: &str = "com.apple.mobile.backup.domain_changed";

/// Errors reading a service reply.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The reply was not a dictionary or lacked a key.
    #[error("{service} reply lacks {what}")]
    Malformed {
        /// Which service.
        service: &'static str,
        /// What was missing.
        what: &'static str,
    },
    /// The service reported a failure status or error.
    #[error("{service} failed: {status}")]
    Failed {
        /// Which service.
        service: &'static str,
        /// The device's status or error string.
        status: String,
    },
    /// A request received by the device side could not be understood.
    #[error("malformed {service} request: {what}")]
    BadRequest {
        /// Which service.
        service: &'static str,
        /// What was wrong.
        what: &'static str,
    },
}

fn dict<'a>(service: &'static str, v: &'a Value) -> Result<&'a Dictionary, ServiceError> {
    v.as_dictionary().ok_or(ServiceError::Malformed {
        service,
        what: "a dictionary",
    })
}

/// diagnostics_relay requests and replies.
pub mod diagnostics {
    use super::*;

    /// A diagnostics_relay request.
    #[derive(Debug, Clone, PartialEq, Eq)]
    #[non_exhaustive]
    pub enum Request {
        /// `IORegistry`, selecting an entry by name or class.
        IoRegistry {
            /// `CurrentPlane`.
            plane: Option<String>,
            /// `EntryName`.
            entry_name: Option<String>,
            /// `EntryClass`.
            entry_class: Option<String>,
        },
        /// `MobileGestalt` for some keys (answers `MobileGestaltDeprecated` since iOS 17.4).
        MobileGestalt {
            /// The keys asked for.
            keys: Vec<String>,
        },
        /// `All`, `WiFi`, `GasGauge`, `NAND` or `HDMI`: a canned report.
        Report(String),
        /// `Goodbye`.
        Goodbye,
    }

    impl Request {
        /// The request as a dictionary.
        pub fn to_dict(&self) -> Dictionary {
            let mut d = Dictionary::new();
            match self {
                Self::IoRegistry {
                    plane,
                    entry_name,
                    entry_class,
                } => {
                    d.insert("Request".into(), "IORegistry".into());
                    for (k, v) in [
                        ("CurrentPlane", plane),
                        ("EntryName", entry_name),
                        ("EntryClass", entry_class),
                    ] {
                        if let Some(v) = v {
                            d.insert(k.into(), v.clone().into());
                        }
                    }
                }
                Self::MobileGestalt { keys } => {
                    d.insert("Request".into(), "MobileGestalt".into());
                    let keys = keys.iter().cloned().map(Value::String).collect();
                    d.insert("MobileGestaltKeys".into(), Value::Array(keys));
                }
                Self::Report(name) => {
                    d.insert("Request".into(), name.clone().into());
                }
                Self::Goodbye => {
                    d.insert("Request".into(), "Goodbye".into());
                }
            }
            d
        }

        /// Reads a request on the device side.
        pub fn from_dict(d: &Dictionary) -> Result<Self, ServiceError> {
            let bad = |what| ServiceError::BadRequest {
                service: DIAGNOSTICS_RELAY,
                what,
            };
            let name = d.str_key("Request").ok_or_else(|| bad("no Request"))?;
            let s = |k: &str| d.str_key(k).map(str::to_owned);
            Ok(match name {
                "IORegistry" => Self::IoRegistry {
                    plane: s("CurrentPlane"),
                    entry_name: s("EntryName"),
                    entry_class: s("EntryClass"),
                },
                "MobileGestalt" => Self::MobileGestalt {
                    keys: d
                        .get("MobileGestaltKeys")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_string)
                                .map(str::to_owned)
                                .collect()
                        })
                        .unwrap_or_default(),
                },
                "Goodbye" => Self::Goodbye,
                other => Self::Report(other.to_owned()),
            })
        }
    }

    /// Reads an `IORegistry` reply: the entry's properties, or `None` when the device has no such entry.
    ///
    /// Newer devices answer an unknown or unsupported entry with `Status: Success` and an empty dictionary,
    /// so an empty dictionary also reads as `None`.
    pub fn parse_ioregistry(reply: &Value) -> Result<Option<Dictionary>, ServiceError> {
        let d = dict(DIAGNOSTICS_RELAY, reply)?;
        match d.str_key("Status") {
            Some("Success") => {}
            Some(other) => {
                return Err(ServiceError::Failed {
                    service: DIAGNOSTICS_RELAY,
                    status: other.into(),
                });
            }
            None => {
                return Err(ServiceError::Malformed {
                    service: DIAGNOSTICS_RELAY,
                    what: "Status",
                });
            }
        }
        let entry = d
            .dict_key("Diagnostics")
            .and_then(|diag| diag.dict_key("IORegistry"));
        Ok(entry.filter(|e| !e.is_empty()).cloned())
    }

    /// Builds the device's reply to `IORegistry`.
    pub fn ioregistry_reply(entry: Option<&Dictionary>) -> Value {
        let mut diag = Dictionary::new();
        diag.insert(
            "IORegistry".into(),
            Value::Dictionary(entry.cloned().unwrap_or_default()),
        );
        let mut d = Dictionary::new();
        d.insert("Diagnostics".into(), Value::Dictionary(diag));
        d.insert("Status".into(), "Success".into());
        Value::Dictionary(d)
    }

    /// What the Wi-Fi interface's IORegistry entry says about association.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct WifiState {
        /// Whether the interface is associated with a network.
        pub associated: bool,
        /// The network name, when the entry reports it.
        pub ssid: Option<String>,
    }

    /// Reads association from the Wi-Fi interface's properties.
    ///
    /// The entry carries `IO80211SSID` and a non-zero `IO80211BSSID` while associated (property names as on
    /// the same driver class on macOS; iPhone dumps were not found, so this is the documented inference).
    pub fn wifi_state(entry: &Dictionary) -> WifiState {
        let ssid = match entry.get("IO80211SSID") {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Data(b)) if !b.is_empty() => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        };
        let bssid = entry
            .data_key("IO80211BSSID")
            .is_some_and(|b| b.iter().any(|&x| x != 0));
        WifiState {
            associated: ssid.is_some() || bssid,
            ssid,
        }
    }
}

/// installation_proxy requests and replies.
pub mod instproxy {
    use super::*;

    /// The attributes backupd asks for.
    pub const RETURN_ATTRIBUTES: &[&str] = &[
        "CFBundleIdentifier",
        "CFBundleDisplayName",
        "CFBundleShortVersionString",
        "CFBundleVersion",
        "Entitlements",
    ];

    /// An installation_proxy request.
    #[derive(Debug, Clone, PartialEq, Eq)]
    #[non_exhaustive]
    pub enum Request {
        /// `Browse` the installed apps of a type.
        Browse {
            /// `ApplicationType`: `User`, `System` or `Any`.
            application_type: String,
            /// `ReturnAttributes`; empty means all.
            attributes: Vec<String>,
        },
        /// `Lookup` some bundle ids.
        Lookup {
            /// `BundleIDs`.
            bundle_ids: Vec<String>,
            /// `ReturnAttributes`; empty means all.
            attributes: Vec<String>,
        },
    }

    impl Request {
        /// The request as a dictionary.
        pub fn to_dict(&self) -> Dictionary {
            let strings =
                |v: &[String]| Value::Array(v.iter().cloned().map(Value::String).collect());
            let mut options = Dictionary::new();
            let command = match self {
                Self::Browse {
                    application_type,
                    attributes,
                } => {
                    options.insert("ApplicationType".into(), application_type.clone().into());
                    if !attributes.is_empty() {
                        options.insert("ReturnAttributes".into(), strings(attributes));
                    }
                    "Browse"
                }
                Self::Lookup {
                    bundle_ids,
                    attributes,
                } => {
                    options.insert("BundleIDs".into(), strings(bundle_ids));
                    if !attributes.is_empty() {
                        options.insert("ReturnAttributes".into(), strings(attributes));
                    }
                    "Lookup"
                }
            };
            let mut d = Dictionary::new();
            d.insert("Command".into(), command.into());
            d.insert("ClientOptions".into(), Value::Dictionary(options));
            d
        }

        /// Reads a request on the device side.
        pub fn from_dict(d: &Dictionary) -> Result<Self, ServiceError> {
            let bad = |what| ServiceError::BadRequest {
                service: INSTALLATION_PROXY,
                what,
            };
            let command = d.str_key("Command").ok_or_else(|| bad("no Command"))?;
            let empty = Dictionary::new();
            let options = d.dict_key("ClientOptions").unwrap_or(&empty);
            let strings = |k: &str| {
                options
                    .get(k)
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_string)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            match command {
                "Browse" => Ok(Self::Browse {
                    application_type: options.str_key("ApplicationType").unwrap_or("Any").into(),
                    attributes: strings("ReturnAttributes"),
                }),
                "Lookup" => Ok(Self::Lookup {
                    bundle_ids: strings("BundleIDs"),
                    attributes: strings("ReturnAttributes"),
                }),
                _ => Err(bad("unknown Command")),
            }
        }
    }

    /// An installed app, as backupd needs it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct App {
        /// `CFBundleIdentifier`.
        pub bundle_id: String,
        /// `CFBundleDisplayName`, else `CFBundleName`.
        pub name: Option<String>,
        /// `CFBundleShortVersionString`, else `CFBundleVersion`.
        pub version: Option<String>,
        /// Whether the entitlements name iCloud containers or services.
        pub uses_icloud: Option<bool>,
    }

    impl App {
        /// Reads an app from its attribute dictionary.
        pub fn from_attributes(bundle_id: &str, attrs: &Dictionary) -> Self {
            let name = attrs
                .str_key("CFBundleDisplayName")
                .or_else(|| attrs.str_key("CFBundleName"))
                .map(str::to_owned);
            let version = attrs
                .str_key("CFBundleShortVersionString")
                .or_else(|| attrs.str_key("CFBundleVersion"))
                .map(str::to_owned);
            let uses_icloud = attrs.dict_key("Entitlements").map(|e| {
                [
                    "com.apple.developer.icloud-container-identifiers",
                    "com.apple.developer.ubiquity-container-identifiers",
                    "com.apple.developer.icloud-services",
                ]
                .iter()
                .any(|k| {
                    e.get(k)
                        .is_some_and(|v| v.as_array().is_none_or(|a| !a.is_empty()))
                })
            });
            Self {
                bundle_id: bundle_id.to_owned(),
                name,
                version,
                uses_icloud,
            }
        }
    }

    /// Reads a `Lookup` reply: the apps found (an absent app is simply not in the result).
    pub fn parse_lookup(reply: &Value) -> Result<Vec<App>, ServiceError> {
        let d = dict(INSTALLATION_PROXY, reply)?;
        check_status(d)?;
        let result = d.dict_key("LookupResult").ok_or(ServiceError::Malformed {
            service: INSTALLATION_PROXY,
            what: "LookupResult",
        })?;
        Ok(result
            .iter()
            .filter_map(|(id, v)| v.as_dictionary().map(|a| App::from_attributes(id, a)))
            .collect())
    }

    fn check_status(d: &Dictionary) -> Result<(), ServiceError> {
        if let Some(err) = d.str_key("Error") {
            return Err(ServiceError::Failed {
                service: INSTALLATION_PROXY,
                status: err.into(),
            });
        }
        Ok(())
    }

    /// One frame of a `Browse` answer.
    #[derive(Debug, Clone, PartialEq)]
    pub enum BrowsePage {
        /// A page of apps; more frames follow.
        Apps(Vec<App>),
        /// The listing is complete.
        Complete,
    }

    /// Reads one frame of a `Browse` answer.
    pub fn parse_browse_frame(reply: &Value) -> Result<BrowsePage, ServiceError> {
        let d = dict(INSTALLATION_PROXY, reply)?;
        check_status(d)?;
        match d.str_key("Status") {
            Some("Complete") => Ok(BrowsePage::Complete),
            Some("BrowsingApplications") => {
                let list = d.get("CurrentList").and_then(Value::as_array).ok_or(
                    ServiceError::Malformed {
                        service: INSTALLATION_PROXY,
                        what: "CurrentList",
                    },
                )?;
                Ok(BrowsePage::Apps(
                    list.iter()
                        .filter_map(Value::as_dictionary)
                        .filter_map(|a| {
                            a.str_key("CFBundleIdentifier")
                                .map(|id| App::from_attributes(id, a))
                        })
                        .collect(),
                ))
            }
            _ => Err(ServiceError::Malformed {
                service: INSTALLATION_PROXY,
                what: "Status",
            }),
        }
    }

    /// Keeps only the requested attributes of an app's dictionary (all when `attributes` is empty).
    pub fn select_attributes(attrs: &Dictionary, attributes: &[String]) -> Dictionary {
        if attributes.is_empty() {
            return attrs.clone();
        }
        attrs
            .iter()
            .filter(|(k, _)| attributes.iter().any(|a| a == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// notification_proxy requests and replies.
pub mod notification {
    use super::*;

    /// Something a host sends to notification_proxy.
    #[derive(Debug, Clone, PartialEq, Eq)]
    #[non_exhaustive]
    pub enum Request {
        /// `ObserveNotification`: relay this notification when it is posted.
        Observe(String),
        /// `PostNotification`: post this notification on the device.
        Post(String),
        /// `Shutdown`: the device answers `ProxyDeath` and closes.
        Shutdown,
    }

    impl Request {
        /// The request as a dictionary.
        pub fn to_dict(&self) -> Dictionary {
            let mut d = Dictionary::new();
            match self {
                Self::Observe(name) => {
                    d.insert("Command".into(), "ObserveNotification".into());
                    d.insert("Name".into(), name.clone().into());
                }
                Self::Post(name) => {
                    d.insert("Command".into(), "PostNotification".into());
                    d.insert("Name".into(), name.clone().into());
                }
                Self::Shutdown => {
                    d.insert("Command".into(), "Shutdown".into());
                }
            }
            d
        }

        /// Reads a request on the device side.
        pub fn from_dict(d: &Dictionary) -> Result<Self, ServiceError> {
            let bad = |what| ServiceError::BadRequest {
                service: NOTIFICATION_PROXY,
                what,
            };
            let name = || {
                d.str_key("Name")
                    .map(str::to_owned)
                    .ok_or_else(|| bad("no Name"))
            };
            match d.str_key("Command") {
                Some("ObserveNotification") => Ok(Self::Observe(name()?)),
                Some("PostNotification") => Ok(Self::Post(name()?)),
                Some("Shutdown") => Ok(Self::Shutdown),
                _ => Err(bad("unknown Command")),
            }
        }
    }

    /// Something notification_proxy sends to the host.
    #[derive(Debug, Clone, PartialEq, Eq)]
    #[non_exhaustive]
    pub enum Event {
        /// `RelayNotification`: an observed notification was posted.
        Relay(String),
        /// `ProxyDeath`: the proxy is going away.
        ProxyDeath,
    }

    impl Event {
        /// Reads an event.
        pub fn from_value(v: &Value) -> Result<Self, ServiceError> {
            let d = dict(NOTIFICATION_PROXY, v)?;
            match d.str_key("Command") {
                Some("RelayNotification") => d
                    .str_key("Name")
                    .map(|n| Self::Relay(n.to_owned()))
                    .ok_or(ServiceError::Malformed {
                        service: NOTIFICATION_PROXY,
                        what: "Name",
                    }),
                Some("ProxyDeath") => Ok(Self::ProxyDeath),
                _ => Err(ServiceError::Malformed {
                    service: NOTIFICATION_PROXY,
                    what: "Command",
                }),
            }
        }

        /// The event as a dictionary.
        pub fn to_dict(&self) -> Dictionary {
            let mut d = Dictionary::new();
            match self {
                Self::Relay(name) => {
                    d.insert("Command".into(), "RelayNotification".into());
                    d.insert("Name".into(), name.clone().into());
                }
                Self::ProxyDeath => {
                    d.insert("Command".into(), "ProxyDeath".into());
                }
            }
            d
        }
    }
}

//! Clients of the lockdown services backupd reads.

use plist::{Dictionary, Value};

use backupd_proto::lockdown::PlistFormat;
use backupd_proto::services::{self, diagnostics, instproxy, notification};

use crate::conn::PlistConn;
use crate::error::TransportError;
use crate::lockdown::Lockdown;

/// A diagnostics_relay connection.
#[derive(Debug)]
pub struct DiagnosticsRelay {
    conn: PlistConn,
}

impl DiagnosticsRelay {
    /// Starts the service on a lockdown session.
    pub async fn start(lockdown: &mut Lockdown) -> Result<Self, TransportError> {
        Ok(Self {
            conn: lockdown
                .start_service(services::DIAGNOSTICS_RELAY, None)
                .await?,
        })
    }

    /// Properties of one IORegistry entry, by name or class; `None` when the device has no such entry.
    pub async fn ioregistry(
        &mut self,
        entry_name: Option<&str>,
        entry_class: Option<&str>,
    ) -> Result<Option<Dictionary>, TransportError> {
        let request = diagnostics::Request::IoRegistry {
            plane: None,
            entry_name: entry_name.map(str::to_owned),
            entry_class: entry_class.map(str::to_owned),
        };
        let reply = self.conn.request(request.to_dict()).await?;
        Ok(diagnostics::parse_ioregistry(&reply)?)
    }

    /// The Wi-Fi interface's properties: by entry name on current iPhones, by class on older ones.
    pub async fn wifi_interface(&mut self) -> Result<Option<Dictionary>, TransportError> {
        if let Some(entry) = self
            .ioregistry(Some(services::WIFI_ENTRY_NAME), None)
            .await?
        {
            return Ok(Some(entry));
        }
        self.ioregistry(None, Some(services::WIFI_ENTRY_CLASS))
            .await
    }

    /// Ends the conversation politely.
    pub async fn goodbye(mut self) {
        let _ = self
            .conn
            .request(diagnostics::Request::Goodbye.to_dict())
            .await;
    }
}

/// An installation_proxy connection.
#[derive(Debug)]
pub struct InstallationProxy {
    conn: PlistConn,
}

impl InstallationProxy {
    /// Starts the service on a lockdown session.
    pub async fn start(lockdown: &mut Lockdown) -> Result<Self, TransportError> {
        Ok(Self {
            conn: lockdown
                .start_service(services::INSTALLATION_PROXY, None)
                .await?,
        })
    }

    fn attributes() -> Vec<String> {
        instproxy::RETURN_ATTRIBUTES
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    }

    /// Looks up apps by bundle id; absent apps are simply not in the answer.
    pub async fn lookup(
        &mut self,
        bundle_ids: &[&str],
    ) -> Result<Vec<instproxy::App>, TransportError> {
        let request = instproxy::Request::Lookup {
            bundle_ids: bundle_ids.iter().map(|s| (*s).to_owned()).collect(),
            attributes: Self::attributes(),
        };
        let reply = self.conn.request(request.to_dict()).await?;
        Ok(instproxy::parse_lookup(&reply)?)
    }

    /// Lists the user apps; `max_apps` bounds how many are kept whatever the device sends.
    pub async fn browse_user_apps(
        &mut self,
        max_apps: usize,
    ) -> Result<Vec<instproxy::App>, TransportError> {
        let request = instproxy::Request::Browse {
            application_type: "User".into(),
            attributes: Self::attributes(),
        };
        self.conn
            .send(&Value::Dictionary(request.to_dict()), PlistFormat::Xml)
            .await?;
        let mut apps = Vec::new();
        loop {
            match instproxy::parse_browse_frame(&self.conn.recv().await?)? {
                instproxy::BrowsePage::Complete => return Ok(apps),
                instproxy::BrowsePage::Apps(page) => {
                    let room = max_apps.saturating_sub(apps.len());
                    apps.extend(page.into_iter().take(room));
                }
            }
        }
    }
}

/// A notification_proxy connection.
#[derive(Debug)]
pub struct NotificationProxy {
    conn: PlistConn,
}

impl NotificationProxy {
    /// Starts the service on a lockdown session.
    pub async fn start(lockdown: &mut Lockdown) -> Result<Self, TransportError> {
        Ok(Self {
            conn: lockdown
                .start_service(services::NOTIFICATION_PROXY, None)
                .await?,
        })
    }

    async fn send(&mut self, request: notification::Request) -> Result<(), TransportError> {
        self.conn
            .send(&Value::Dictionary(request.to_dict()), PlistFormat::Xml)
            .await
    }

    /// Asks to be told when `name` is posted.
    pub async fn observe(&mut self, name: &str) -> Result<(), TransportError> {
        self.send(notification::Request::Observe(name.to_owned()))
            .await
    }

    /// Posts `name` on the device.
    pub async fn post(&mut self, name: &str) -> Result<(), TransportError> {
        self.send(notification::Request::Post(name.to_owned()))
            .await
    }

    /// The next relayed notification or the proxy's death.
    pub async fn next_event(&mut self) -> Result<notification::Event, TransportError> {
        let value = self.conn.recv().await?;
        Ok(notification::Event::from_value(&value)?)
    }

    /// Asks the proxy to shut down and waits for `ProxyDeath`.
    pub async fn shutdown(mut self) -> Result<(), TransportError> {
        self.send(notification::Request::Shutdown).await?;
        loop {
            if self.next_event().await? == notification::Event::ProxyDeath {
                return Ok(());
            }
        }
    }
}

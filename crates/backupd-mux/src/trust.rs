//! Getting a trusted lockdown session: use the stored pair record, or pair, and say why not when it fails.

use std::time::SystemTime;

use backupd_proto::lockdown::DeviceError;
use backupd_proto::pair::PairRecord;
use backupd_proto::tls::DevicePinning;
use backupd_proto::usbmuxd::Device;

use crate::error::TransportError;
use crate::lockdown::{Lockdown, PairOutcome};
use crate::muxd::Muxd;

/// Why a trusted session could not be had yet; each asks something of the person holding the phone.
#[derive(Debug)]
#[non_exhaustive]
pub enum TrustProblem {
    /// The Trust dialog is showing; tap Trust.
    Pending,
    /// The person tapped "Don't Trust".
    Denied,
    /// The phone is locked; unlock it.
    PasscodeLocked,
    /// The phone no longer knows this host's record and re-pairing did not complete.
    InvalidHost,
    /// Something failed on the way.
    Failed(TransportError),
}

impl From<TransportError> for TrustProblem {
    fn from(e: TransportError) -> Self {
        Self::Failed(e)
    }
}

/// A lockdown session the phone trusts, with the record it was opened with.
#[derive(Debug)]
pub struct Trusted {
    /// The session.
    pub lockdown: Lockdown,
    /// The pair record in use.
    pub record: PairRecord,
    /// Whether this call created the record.
    pub newly_paired: bool,
}

/// Drives pairing for one device across attempts, keeping the record of a Trust dialog still on screen.
#[derive(Debug, Default)]
pub struct Pairing {
    pending: Option<PairRecord>,
}

impl Pairing {
    /// A fresh pairing state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens a trusted session: the stored record if the phone still accepts it, else a new pairing.
    ///
    /// A phone that answers `InvalidHostID` has forgotten this host (its trust was reset), so the stale record
    /// is replaced by a new pairing, which shows the Trust dialog again.
    pub async fn open(
        &mut self,
        muxd: &Muxd,
        device: &Device,
        pinning: DevicePinning,
        now: SystemTime,
    ) -> Result<Trusted, TrustProblem> {
        if let Some(bytes) = muxd.read_pair_record(&device.udid).await? {
            match PairRecord::from_plist(&bytes) {
                Ok(record) => {
                    let lockdown = Lockdown::connect(muxd, device).await?;
                    match lockdown.start_session(&record, pinning).await {
                        Ok(lockdown) => {
                            return Ok(Trusted {
                                lockdown,
                                record,
                                newly_paired: false,
                            });
                        }
                        Err(e) if e.device_error() == Some(&DeviceError::InvalidHostID) => {
                            tracing::info!(udid = %device.udid, "phone forgot this host; pairing again");
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) => {
                    tracing::warn!(udid = %device.udid, error = %e, "stored pair record unreadable; pairing again")
                }
            }
        }
        let mut lockdown = Lockdown::connect(muxd, device).await?;
        match lockdown.pair(&mut self.pending, now).await? {
            PairOutcome::Paired(record) => {
                let lockdown = Lockdown::connect(muxd, device).await?;
                let lockdown = lockdown
                    .start_session(&record, pinning)
                    .await
                    .map_err(|e| {
                        if e.device_error() == Some(&DeviceError::InvalidHostID) {
                            TrustProblem::InvalidHost
                        } else {
                            TrustProblem::Failed(e)
                        }
                    })?;
                Ok(Trusted {
                    lockdown,
                    record: *record,
                    newly_paired: true,
                })
            }
            PairOutcome::Pending => Err(TrustProblem::Pending),
            PairOutcome::Denied => Err(TrustProblem::Denied),
            PairOutcome::PasscodeLocked => Err(TrustProblem::PasscodeLocked),
        }
    }
}

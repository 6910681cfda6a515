//! Thresholds the rules compare facts against.

use serde::{Deserialize, Serialize};

/// Thresholds for the checks; every field has a default, so the daemon's TOML can embed a partial table.
///
/// ```
/// let config: backupd_rules::RulesConfig = toml::from_str("icloud_quota_bytes = 50_000_000_000").unwrap();
/// assert_eq!(config.icloud_backup_max_age_days, 7);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RulesConfig {
    /// The iCloud storage the user has, in bytes: the free plan's 5 GB unless configured.
    /// No service over USB reports the real quota, so this is what the estimate is compared against.
    pub icloud_quota_bytes: u64,
    /// An iCloud backup older than this many days is stale.
    pub icloud_backup_max_age_days: u32,
    /// A local backup older than this many days is stale.
    pub local_backup_max_age_days: u32,
    /// A DFU restore erases the phone, so it is offered only after a verified local backup at most this many days
    /// old.
    pub dfu_backup_max_age_days: u32,
    /// Below this many free bytes on the phone, storage is low.
    pub phone_min_free_bytes: u64,
}

impl Default for RulesConfig {
    fn default() -> Self {
        Self {
            icloud_quota_bytes: 5_000_000_000,
            icloud_backup_max_age_days: 7,
            local_backup_max_age_days: 30,
            dfu_backup_max_age_days: 1,
            // iOS needs room for the snapshot it takes before uploading; 1 GB is our own margin, not Apple's figure.
            phone_min_free_bytes: 1_000_000_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_toml_keeps_defaults() {
        let config: RulesConfig =
            toml::from_str("icloud_quota_bytes = 50_000_000_000\n").expect("valid toml");
        assert_eq!(config.icloud_quota_bytes, 50_000_000_000);
        assert_eq!(config.local_backup_max_age_days, 30);
        assert_eq!(
            toml::from_str::<RulesConfig>("").expect("empty toml"),
            RulesConfig::default()
        );
    }

    #[test]
    fn misspelled_keys_are_rejected() {
        assert!(toml::from_str::<RulesConfig>("icloud_quota = 1\n").is_err());
    }
}

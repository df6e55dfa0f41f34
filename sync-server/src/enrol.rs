//! Enrolment codes (one-time, expiring, stored only as a hash) and device tokens.

use std::sync::Arc;

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::{
    hub::{Hub, now_ms},
    store::{Credential, Device, NewCode, RedeemError, RelayStore, StoreError},
};

const ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";

/// Normalises a code as typed (case, spaces and dashes do not matter) and hashes it.
pub fn code_hash(code: &str) -> Vec<u8> {
    let norm: String = code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect();
    Sha256::digest(norm.as_bytes()).to_vec()
}

/// SHA-256 of a bearer token.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A new random device token (256 bits).
pub fn new_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// A new device id.
pub fn new_device_id() -> String {
    format!("dev_{}", uuid::Uuid::now_v7().simple())
}

/// Creates a one-time code for `shop` (and `branch`, or the whole shop) valid for `ttl_hours`;
/// returns it as `XXXX-XXXX-XXXX` (the only time it is shown).
pub fn create_code(
    store: &dyn RelayStore,
    shop: &str,
    branch: Option<&str>,
    note: &str,
    ttl_hours: u32,
) -> Result<(String, i64), StoreError> {
    let raw: String = rand::random::<[u8; 12]>().iter().map(|b| ALPHABET[usize::from(b % 32)] as char).collect();
    let code = format!("{}-{}-{}", &raw[0..4], &raw[4..8], &raw[8..12]);
    let now = now_ms();
    let expires_at = now + i64::from(ttl_hours) * 3_600_000;
    store.create_code(&NewCode {
        code_hash: code_hash(&code),
        shop_id: shop.to_string(),
        branch_id: branch.map(str::to_string),
        note: note.to_string(),
        created_at: now,
        expires_at,
    })?;
    Ok((code, expires_at))
}

/// Why a code was not redeemed.
#[derive(Debug)]
pub enum RedeemFailure {
    /// The code is unknown, used or expired: a sentence for the device's owner.
    Refused(String),
    /// The relay's store failed: nothing is wrong with the code; try again.
    Store(String),
}

/// Redeems a code for a new device.
pub async fn redeem(hub: &Arc<Hub>, code: &str, name: &str, credential: Credential) -> Result<Device, RedeemFailure> {
    let (hash, name, id) = (code_hash(code), name.to_string(), new_device_id());
    let r = hub
        .blocking(move |s| s.redeem_code(&hash, &id, &name, &credential, now_ms()))
        .await
        .map_err(|e| RedeemFailure::Store(e.to_string()))?;
    let refused = |m: &str| Err(RedeemFailure::Refused(m.into()));
    match r {
        Ok(d) => {
            tracing::info!(device = %d.id, shop = %d.shop_id, branch = ?d.branch_id, name = %d.name, "device enrolled");
            Ok(d)
        }
        Err(RedeemError::Unknown) => refused("the enrolment code is not valid"),
        Err(RedeemError::Used) => refused("the enrolment code was already used"),
        Err(RedeemError::Expired) => refused("the enrolment code has expired; ask the owner for a new one"),
    }
}

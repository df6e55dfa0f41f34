//! automerge-repo document ids for DashOffice documents. automerge-repo names a document by 16
//! bytes in bs58check; DashOffice derives them from its own document id (the first 16 bytes of
//! its SHA-256), so every replica and the relay compute the same id without a lookup.

use sha2::{Digest, Sha256};

/// The automerge-repo id (bs58check of 16 bytes) of a DashOffice document id.
pub fn repo_id(doc_id: &str) -> String {
    let h = Sha256::digest(doc_id.as_bytes());
    bs58::encode(&h[..16]).with_check().into_string()
}

/// The `automerge:` URL that JavaScript clients pass to `repo.find`.
pub fn repo_url(doc_id: &str) -> String {
    format!("automerge:{}", repo_id(doc_id))
}

/// Whether `s` is a well-formed automerge-repo id (16 bytes with a valid checksum).
pub fn is_repo_id(s: &str) -> bool {
    bs58::decode(s).with_check(None).into_vec().is_ok_and(|b| b.len() == 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_valid() {
        let id = repo_id("shop/products/00a");
        assert_eq!(id, repo_id("shop/products/00a"));
        assert!(is_repo_id(&id));
        assert!(!is_repo_id("shop/products/00a"));
        assert_ne!(id, repo_id("shop/products/00b"));
        assert!(repo_url("x").starts_with("automerge:"));
    }
}

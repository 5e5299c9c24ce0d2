//! Seals on stored requests: an HMAC-SHA256, under a key only gateways
//! hold, over everything a stored row says — its columns and the whole
//! request (requester, session, database, statement hash, classes, rule,
//! group, quorum, times, state, every vote with its approver and reason,
//! whether it was used).
//!
//! Why: the shared store is a table in a PostgreSQL database, and anyone
//! who can write to that table — an agent whose session reaches it, a
//! stolen service login — could otherwise approve a held statement with
//! one `UPDATE`. A row whose seal does not verify (edited, forged, copied
//! under another id, or written before seals existed) is treated as if it
//! did not exist, and logged. The embedded store is sealed the same way.
//!
//! A seal does not stop an old, validly sealed version of the same row from
//! being written back (a replay needs read access to the table, which
//! agents are refused: see `proxy`'s check of the store's database).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::approval::HoldRequest;

type HmacSha256 = Hmac<Sha256>;

/// Separates these MACs from any other use of the key.
const DOMAIN: &[u8] = b"airlock hold request v1";

/// The key gateways seal stored requests with. Every gateway sharing one
/// store must hold the same key (`[approval] store_key` / `store_key_file`).
#[derive(Clone)]
pub struct StoreKey([u8; 32]);

impl StoreKey {
    pub fn new(bytes: [u8; 32]) -> StoreKey {
        StoreKey(bytes)
    }
}

impl std::fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreKey(…)")
    }
}

/// One row as stored: the columns the store queries by, the request as
/// JSON, and its seal (`None` when the column is empty).
#[derive(Debug, Clone)]
pub(super) struct Row {
    pub id: String,
    pub state: String,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub requester: String,
    pub database: String,
    pub sql_hash: String,
    pub body: String,
    pub mac: Option<String>,
}

/// Why a stored row was not believed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum Unsealed {
    #[error("it carries no seal")]
    Missing,
    #[error("its seal does not match its content")]
    Mismatch,
    #[error("its columns disagree with the request it holds")]
    Inconsistent,
    #[error("the request it holds is unreadable")]
    Unreadable,
}

impl Row {
    /// The row that stores `request`, sealed with `key`.
    pub fn sealed(request: &HoldRequest, key: &StoreKey) -> Result<Row, serde_json::Error> {
        let mut row = Row {
            id: request.id.clone(),
            state: request.state.name().to_string(),
            created_ms: request.created_ms as i64,
            expires_ms: request.expires_ms as i64,
            requester: request.requester.clone(),
            database: request.database.clone(),
            sql_hash: request.sql_hash.clone(),
            body: serde_json::to_string(request)?,
            mac: None,
        };
        row.mac = Some(crate::hex::encode(
            &row.mac_over(key).finalize().into_bytes(),
        ));
        Ok(row)
    }

    /// The HMAC state over every field, each length-prefixed so that no
    /// two different rows give the same input.
    fn mac_over(&self, key: &StoreKey) -> HmacSha256 {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&key.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        let created = self.created_ms.to_string();
        let expires = self.expires_ms.to_string();
        for field in [
            DOMAIN,
            self.id.as_bytes(),
            self.state.as_bytes(),
            created.as_bytes(),
            expires.as_bytes(),
            self.requester.as_bytes(),
            self.database.as_bytes(),
            self.sql_hash.as_bytes(),
            self.body.as_bytes(),
        ] {
            mac.update(&(field.len() as u64).to_le_bytes());
            mac.update(field);
        }
        mac
    }

    /// The request this row holds, if its seal verifies under `key` and
    /// its columns say what the request says.
    pub fn open(&self, key: &StoreKey) -> Result<HoldRequest, Unsealed> {
        let given = self.mac.as_deref().ok_or(Unsealed::Missing)?;
        let given = crate::hex::decode::<32>(given.trim()).ok_or(Unsealed::Mismatch)?;
        // Constant-time comparison.
        self.mac_over(key)
            .verify_slice(&given)
            .map_err(|_| Unsealed::Mismatch)?;
        let request: HoldRequest =
            serde_json::from_str(&self.body).map_err(|_| Unsealed::Unreadable)?;
        let agrees = request.id == self.id
            && request.state.name() == self.state
            && request.created_ms as i64 == self.created_ms
            && request.expires_ms as i64 == self.expires_ms
            && request.requester == self.requester
            && request.database == self.database
            && request.sql_hash == self.sql_hash;
        if !agrees {
            return Err(Unsealed::Inconsistent);
        }
        Ok(request)
    }

    /// [`Row::open`], logging a row that fails: it is ignored, as if it did
    /// not exist, and someone must find out who wrote it.
    pub fn believed(&self, key: &StoreKey, store: &str) -> Option<HoldRequest> {
        match self.open(key) {
            Ok(request) => Some(request),
            Err(why) => {
                tracing::error!(
                    request = %self.id,
                    state = %self.state,
                    store,
                    "a stored hold request is ignored: {why} (written outside Airlock, or by a gateway with another [approval] store key)"
                );
                None
            }
        }
    }
}

/// Separates break-glass windows' MACs from requests'.
const WINDOW_DOMAIN: &[u8] = b"airlock break-glass window v1";

/// The seal of break-glass window `body` (JSON) for `identity`.
pub(super) fn seal_window(key: &StoreKey, identity: &str, body: &str) -> String {
    crate::hex::encode(&window_mac(key, identity, body).finalize().into_bytes())
}

fn window_mac(key: &StoreKey, identity: &str, body: &str) -> HmacSha256 {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(&key.0)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    for field in [WINDOW_DOMAIN, identity.as_bytes(), body.as_bytes()] {
        mac.update(&(field.len() as u64).to_le_bytes());
        mac.update(field);
    }
    mac
}

/// The window a stored row holds, if its seal verifies and it is for the
/// identity its key column names; otherwise logged and ignored (a window
/// written outside Airlock approves nothing).
pub(super) fn window_believed(
    key: &StoreKey,
    identity: &str,
    body: &str,
    mac: &str,
    store: &str,
) -> Option<crate::approval::breakglass::Window> {
    let verified = crate::hex::decode::<32>(mac.trim())
        .is_some_and(|given| window_mac(key, identity, body).verify_slice(&given).is_ok());
    let window: Option<crate::approval::breakglass::Window> = verified
        .then(|| serde_json::from_str(body).ok())
        .flatten()
        .filter(|w: &crate::approval::breakglass::Window| w.identity == identity);
    if window.is_none() {
        tracing::error!(identity, store, "a stored break-glass window is ignored: its seal does not verify (written outside Airlock, or by a gateway with another [approval] store key)");
    }
    window
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::{State, Vote};

    fn key() -> StoreKey {
        StoreKey::new([9; 32])
    }

    fn request(id: &str) -> HoldRequest {
        let mut r = crate::approval::tests::request(2);
        r.id = id.into();
        r
    }

    #[test]
    fn a_sealed_row_opens_with_its_key_only() {
        let row = Row::sealed(&request("r-1"), &key()).unwrap();
        assert_eq!(row.open(&key()).unwrap().id, "r-1");
        assert_eq!(
            row.open(&StoreKey::new([8; 32])).unwrap_err(),
            Unsealed::Mismatch
        );
    }

    #[test]
    fn edited_rows_are_not_believed() {
        let row = Row::sealed(&request("r-1"), &key()).unwrap();
        type Edit = Box<dyn Fn(&mut Row)>;
        let edits: Vec<(&str, Edit)> = vec![
            ("state column", Box::new(|r| r.state = "approved".into())),
            (
                "state in the body",
                Box::new(|r| r.body = r.body.replace("\"pending\"", "\"approved\"")),
            ),
            (
                "both states",
                Box::new(|r| {
                    r.state = "approved".into();
                    r.body = r.body.replace("\"pending\"", "\"approved\"");
                }),
            ),
            (
                "votes",
                Box::new(|r| {
                    let mut q: HoldRequest = serde_json::from_str(&r.body).unwrap();
                    q.votes.push(Vote {
                        approver: "dba1".into(),
                        approve: true,
                        reason: "ok".into(),
                        at_ms: 1,
                    });
                    r.body = serde_json::to_string(&q).unwrap();
                }),
            ),
            (
                "quorum",
                Box::new(|r| r.body = r.body.replace("\"quorum\":2", "\"quorum\":0")),
            ),
            ("expiry", Box::new(|r| r.expires_ms += 3_600_000)),
            ("requester", Box::new(|r| r.requester = "other".into())),
            ("statement hash", Box::new(|r| r.sql_hash = "11".into())),
            ("seal removed", Box::new(|r| r.mac = None)),
            ("seal garbled", Box::new(|r| r.mac = Some("zz".into()))),
            (
                "seal of another content",
                Box::new(|r| {
                    r.mac = Row::sealed(&request("r-2"), &key()).unwrap().mac;
                }),
            ),
        ];
        for (what, edit) in edits {
            let mut edited = row.clone();
            edit(&mut edited);
            assert!(
                edited.open(&key()).is_err(),
                "{what} edited, still believed"
            );
            assert!(edited.believed(&key(), "test").is_none(), "{what}");
        }
    }

    #[test]
    fn rows_swapped_or_copied_under_another_id_are_not_believed() {
        let mut approved = request("r-approved");
        approved.state = State::Approved;
        let a = Row::sealed(&approved, &key()).unwrap();
        let b = Row::sealed(&request("r-pending"), &key()).unwrap();
        // r-pending's row given r-approved's content and seal.
        let swapped = Row {
            id: b.id.clone(),
            ..a.clone()
        };
        assert!(swapped.open(&key()).is_err());
        // A sealed body whose columns were kept from another row.
        let mixed = Row {
            body: a.body.clone(),
            mac: a.mac.clone(),
            ..b.clone()
        };
        assert!(mixed.open(&key()).is_err());
        assert_eq!(b.open(&key()).unwrap().state, State::Pending);
    }
}

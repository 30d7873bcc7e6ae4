//! API keys: how an application's backend sends notifications.
//!
//! A key is `hk_` and 64 hex digits (244 random bits, from two UUIDv4s).
//! It is printed once, by `server keys create`; the store keeps only its
//! SHA-256 (a fast hash is enough for random keys that long: there is no
//! dictionary to try). A request presents it as `Authorization: Bearer
//! hk_…` on the JSON API; each use is checked against the store, so a
//! revoked key is refused at once by every instance.
//!
//! Scopes: `send` (send to any user, as the service: its notifications show
//! the key's name as sender) and `users` (manage the user directory).

use std::io::Write;

use sha2::{Digest, Sha256};

use app::model::Scopes;

use crate::config::Config;
use crate::error::StartError;
use crate::store::Store;

/// What every key starts with, so a key is told from a token at a glance.
pub const PREFIX: &str = "hk_";

/// A new random key.
pub fn generate() -> String {
    format!(
        "{PREFIX}{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// What the store keeps of `key`: its SHA-256, lower-case hex.
pub fn hash(key: &str) -> String {
    format!("{:x}", Sha256::digest(key.as_bytes()))
}

/// Scopes from their stored form (`send,users`); unknown words are ignored.
pub fn parse_scopes(text: &str) -> Scopes {
    let mut scopes = Scopes::default();
    for word in text.split(',').map(str::trim) {
        match word {
            "send" => scopes.send = true,
            "users" => scopes.users = true,
            _ => {}
        }
    }
    scopes
}

/// One scope, as `server keys create --scopes` takes it.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Send notifications to any user.
    Send,
    /// Manage the user directory.
    Users,
}

/// `server keys …`: manage API keys in the configured store.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum KeysCommand {
    /// Create a key and print it (the only time it is shown).
    Create {
        /// The service's name: its notifications show it as sender
        /// (1-64 letters, digits, spaces, `.`, `_`, `-`).
        #[arg(long)]
        name: String,
        /// What the key may do.
        #[arg(long, value_enum, value_delimiter = ',', default_value = "send")]
        scopes: Vec<Scope>,
    },
    /// List keys (never the keys themselves).
    List,
    /// Revoke a key by name or id; every instance refuses it from then on.
    Revoke {
        /// The key's name or id.
        key: String,
    },
}

/// Whether `name` may name a service (it is shown as a sender).
fn acceptable_name(name: &str) -> bool {
    (1..=64).contains(&name.chars().count())
        && name.trim() == name
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '.' | '_' | '-'))
}

/// Run a `keys` command against the store of `cfg`, writing the answer to
/// `out`.
pub async fn run(
    cfg: &Config,
    command: KeysCommand,
    out: &mut impl Write,
) -> Result<(), StartError> {
    let store = Store::open(&cfg.database_url).await?;
    let done = match command {
        KeysCommand::Create { name, scopes } => {
            if !acceptable_name(&name) {
                return Err(StartError::Config(format!(
                    "key name {name:?}: use 1-64 letters, digits, spaces, `.`, `_` or `-`"
                )));
            }
            let key = generate();
            let mut words: Vec<&str> = scopes
                .iter()
                .map(|s| match s {
                    Scope::Send => "send",
                    Scope::Users => "users",
                })
                .collect();
            words.sort_unstable();
            words.dedup();
            let scopes = words.join(",");
            match store.create_key(&name, &hash(&key), &scopes).await? {
                Some(id) => writeln!(
                    out,
                    "{key}\n\nKey {id} \"{name}\" (scopes: {scopes}). This is the only time \
                     the key is shown; keep it in your secret store."
                ),
                None => {
                    return Err(StartError::Config(format!(
                        "a key named {name:?} exists; revoke it or pick another name"
                    )))
                }
            }
        }
        KeysCommand::List => {
            let mut text = String::from("id\tname\tscopes\tcreated\trevoked\n");
            for k in store.keys().await? {
                text.push_str(&format!(
                    "{}\t{}\t{}\t{}\t{}\n",
                    k.id,
                    k.name,
                    k.scopes,
                    k.created_at,
                    k.revoked_at.as_deref().unwrap_or("-")
                ));
            }
            write!(out, "{text}")
        }
        KeysCommand::Revoke { key } => {
            if !store.revoke_key(&key).await? {
                return Err(StartError::Config(format!("no live key named {key:?}")));
            }
            writeln!(out, "revoked {key}")
        }
    };
    store.close().await;
    done.map_err(StartError::Io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_hashed() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert!(a.starts_with(PREFIX) && a.len() == PREFIX.len() + 64, "{a}");
        assert_eq!(hash(&a).len(), 64);
        assert_ne!(hash(&a), hash(&b));
        assert!(
            !hash(&a).contains(&a[PREFIX.len()..]),
            "the hash is not the key"
        );
    }

    #[test]
    fn scopes_and_names() {
        assert_eq!(
            parse_scopes("send,users"),
            Scopes {
                send: true,
                users: true
            }
        );
        assert_eq!(
            parse_scopes("users"),
            Scopes {
                send: false,
                users: true
            }
        );
        assert_eq!(parse_scopes(""), Scopes::default());
        assert!(acceptable_name("Billing"));
        assert!(acceptable_name("order-service v2"));
        assert!(!acceptable_name(""));
        assert!(!acceptable_name(" padded"));
        assert!(!acceptable_name("new\nline"));
        assert!(!acceptable_name(&"x".repeat(65)));
    }
}

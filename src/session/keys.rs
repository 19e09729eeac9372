//! Session keys as the store knows them and as their callers name them.
//!
//! A token with `own_sessions_only` lives in a key space of its own: its key `k` is stored as
//! `~<token name>/k`, so two such tokens may both use `k`, and neither can learn from a 409 or
//! a 404 that the other's `k` exists (issue 16, item 4). Everything the session tells its
//! callers (events, outcomes, snapshots, draft ids) names it by the key its owner used; tokens
//! that see every session address it, and see it listed, by the stored key.

/// The stored key of `key` for a caller confined to `owner`'s sessions.
pub fn scoped(owner: &str, key: &str) -> String {
    format!("~{owner}/{key}")
}

/// The key a stored session's callers know it by: `k` for `~<owner>/k`, else the key itself.
pub fn shown(stored: &str) -> &str {
    stored
        .strip_prefix('~')
        .and_then(|rest| rest.split_once('/'))
        .filter(|(owner, _)| !owner.is_empty())
        .map_or(stored, |(_, key)| key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoped_keys_show_as_their_owner_named_them() {
        assert_eq!(scoped("bob", "sA"), "~bob/sA");
        assert_eq!(shown(&scoped("bob", "sA")), "sA");
        assert_eq!(shown(&scoped("bob", "~alice/x")), "~alice/x");
        assert_eq!(shown("plain"), "plain");
        assert_eq!(shown("~/x"), "~/x");
        assert_eq!(shown("~nobody"), "~nobody");
    }
}

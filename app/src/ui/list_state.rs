//! How a shown list follows the stream: state changes and new
//! notifications applied to it, counts kept newest-first, and the state of
//! the live connection.

use leptos::prelude::*;

use crate::model::{Change, Counts, ListFilter, Notification};

/// State of the live connection, shown next to the inbox title.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conn {
    /// The EventSource is being opened.
    Connecting,
    /// Events flow.
    Live,
    /// The connection dropped; the browser retries by itself and the server
    /// replays what was missed (`Last-Event-ID`).
    Reconnecting,
    /// The server refused the stream and the browser gave up (it does not
    /// retry an answer other than 200).
    Refused(Refusal),
}

/// Why the server refused the stream, as far as the page can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Too many open streams, of this user or on the server (429).
    TooMany,
    /// The session ended (401).
    SignedOut,
    /// Something else, or not known yet.
    Other,
}

impl Refusal {
    /// The refusal an HTTP status stands for.
    pub fn from_status(status: u16) -> Self {
        match status {
            429 => Refusal::TooMany,
            401 => Refusal::SignedOut,
            _ => Refusal::Other,
        }
    }
}

impl Conn {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Conn::Connecting => "connecting",
            Conn::Live => "live",
            Conn::Reconnecting => "reconnecting",
            Conn::Refused(Refusal::TooMany) => "refused-too-many",
            Conn::Refused(Refusal::SignedOut) => "refused-signed-out",
            Conn::Refused(Refusal::Other) => "refused",
        }
    }

    pub(super) fn label(self) -> &'static str {
        match self {
            Conn::Connecting => "connecting…",
            Conn::Live => "live",
            Conn::Reconnecting => "reconnecting…",
            Conn::Refused(Refusal::TooMany) => {
                "live updates paused: too many open tabs; close some and reload"
            }
            Conn::Refused(Refusal::SignedOut) => "live updates stopped: sign in again",
            Conn::Refused(Refusal::Other) => "live updates stopped; reload to retry",
        }
    }
}

/// Keep `new` if it is newer than `current` (counts come from page loads,
/// actions and the stream, in any order).
pub fn offer_counts(counts: RwSignal<Counts>, new: Counts) {
    if new.version >= counts.get_untracked().version {
        counts.set(new);
    }
}

/// Apply a state change to the list shown with `filter` (newest first).
pub fn apply_change(items: &mut Vec<Notification>, filter: &ListFilter, change: &Change) {
    match change {
        Change::Updated { notification } => {
            if let Some(i) = items.iter().position(|n| n.id == notification.id) {
                if filter.matches(notification) {
                    items[i] = notification.clone();
                } else {
                    items.remove(i);
                }
            }
        }
        Change::Deleted { id } => items.retain(|n| &n.id != id),
        Change::ReadAll { through } => {
            // Everything from `through` down (older) is read; newer items
            // arrived after the change and stay as they are.
            let from = items.iter().position(|n| &n.id == through).unwrap_or(0);
            for n in items.iter_mut().skip(from) {
                n.read = true;
            }
            items.retain(|n| filter.matches(n));
        }
    }
}

/// Add a new notification on top if it belongs in this list and is not
/// there yet.
pub fn add_new(items: &mut Vec<Notification>, filter: &ListFilter, n: Notification) {
    if filter.matches(&n) && !items.iter().any(|x| x.id == n.id) {
        items.insert(0, n);
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::model::Category;

    fn n(id: &str, read: bool) -> Notification {
        Notification {
            read,
            ..Notification::example(id, id)
        }
    }

    #[test]
    fn read_all_marks_from_its_notification_down_only() {
        // c arrived after the read-all was made; it stays unread.
        let mut items = vec![n("c", false), n("b", false), n("a", false)];
        apply_change(
            &mut items,
            &ListFilter::default(),
            &Change::ReadAll {
                through: "b".into(),
            },
        );
        let read: Vec<bool> = items.iter().map(|n| n.read).collect();
        assert_eq!(read, [false, true, true]);

        // In the unread view, read ones leave the list.
        let unread = ListFilter {
            unread: true,
            ..Default::default()
        };
        let mut items = vec![n("c", false), n("b", false)];
        apply_change(
            &mut items,
            &unread,
            &Change::ReadAll {
                through: "b".into(),
            },
        );
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].id, "c");
    }

    #[test]
    fn archived_items_leave_the_inbox_and_updates_replace() {
        let mut items = vec![n("b", false), n("a", false)];
        let mut a = n("a", true);
        apply_change(
            &mut items,
            &ListFilter::default(),
            &Change::Updated {
                notification: a.clone(),
            },
        );
        assert!(items[1].read);
        a.archived = true;
        apply_change(
            &mut items,
            &ListFilter::default(),
            &Change::Updated { notification: a },
        );
        assert_eq!(items.len(), 1);
        apply_change(
            &mut items,
            &ListFilter::default(),
            &Change::Deleted { id: "b".into() },
        );
        assert!(items.is_empty());
    }

    #[test]
    fn new_items_respect_the_filter_and_are_not_duplicated() {
        let alerts = ListFilter {
            category: Some(Category::Alert),
            ..Default::default()
        };
        let mut items = vec![];
        add_new(&mut items, &alerts, n("x", false));
        assert!(items.is_empty(), "an info item is not an alert");
        let mut alert = n("y", false);
        alert.category = Category::Alert;
        add_new(&mut items, &alerts, alert.clone());
        add_new(&mut items, &alerts, alert);
        assert_eq!(items.len(), 1);
    }
}

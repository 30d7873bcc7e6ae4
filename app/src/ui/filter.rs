//! Which list the URL asks for (`?view=unread|archived&category=…&min_priority=…`)
//! and the links to the others: one mapping between filters and URLs.

use crate::model::{Category, ListFilter, PRIORITY_RANGE};

/// The three lists: everything in the inbox, the unread part of it, and
/// the archived notifications.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// The inbox.
    Inbox,
    /// Unread ones only.
    Unread,
    /// Archived ones instead of the inbox.
    Archived,
}

impl View {
    /// In the order the filter bar shows them.
    pub const ALL: [View; 3] = [View::Inbox, View::Unread, View::Archived];

    /// The name in URLs, test ids and the filter bar.
    pub fn as_str(self) -> &'static str {
        match self {
            View::Inbox => "inbox",
            View::Unread => "unread",
            View::Archived => "archived",
        }
    }

    /// The view a `?view=` value names (the inbox for anything else).
    fn parse(name: Option<&str>) -> Self {
        match name {
            Some("archived") => View::Archived,
            Some("unread") => View::Unread,
            _ => View::Inbox,
        }
    }

    /// The view `f` shows.
    pub fn of(f: &ListFilter) -> Self {
        if f.archived {
            View::Archived
        } else if f.unread {
            View::Unread
        } else {
            View::Inbox
        }
    }

    /// `f` switched to this view, its category and priority kept.
    pub fn apply(self, f: ListFilter) -> ListFilter {
        ListFilter {
            archived: self == View::Archived,
            unread: self == View::Unread,
            ..f
        }
    }
}

/// Priority from which the "urgent" filter shows notifications.
pub const URGENT: u8 = 4;

/// Which list the URL asks for.
pub fn filter_from_query(
    view: Option<String>,
    category: Option<String>,
    min_priority: Option<String>,
) -> ListFilter {
    View::parse(view.as_deref()).apply(ListFilter {
        category: category.as_deref().and_then(Category::parse),
        min_priority: min_priority
            .and_then(|p| p.parse().ok())
            .filter(|p| PRIORITY_RANGE.contains(p)),
        ..ListFilter::default()
    })
}

/// The link that shows the list with `f`.
pub fn filter_href(f: &ListFilter) -> String {
    let mut href = format!("/?view={}", View::of(f).as_str());
    if let Some(c) = f.category {
        href.push_str(&format!("&category={}", c.as_str()));
    }
    if let Some(p) = f.min_priority {
        href.push_str(&format!("&min_priority={p}"));
    }
    href
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(s: &str) -> ListFilter {
        let get = |k: &str| {
            s.trim_start_matches("/?")
                .split('&')
                .find_map(|kv| kv.strip_prefix(&format!("{k}=")).map(str::to_owned))
        };
        filter_from_query(get("view"), get("category"), get("min_priority"))
    }

    #[test]
    fn every_filter_survives_its_link() {
        for view in View::ALL {
            for category in [None, Some(Category::Info), Some(Category::Alert)] {
                for min_priority in [None, Some(1), Some(URGENT), Some(5)] {
                    let f = view.apply(ListFilter {
                        category,
                        min_priority,
                        ..ListFilter::default()
                    });
                    assert_eq!(query(&filter_href(&f)), f, "{}", filter_href(&f));
                    assert_eq!(View::of(&f), view);
                }
            }
        }
    }

    #[test]
    fn what_a_url_cannot_mean_is_left_out() {
        let f = filter_from_query(
            Some("everything".into()),
            Some("spam".into()),
            Some("9".into()),
        );
        assert_eq!(f, ListFilter::default());
        assert_eq!(filter_href(&f), "/?view=inbox");
    }
}

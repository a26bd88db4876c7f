//! Which entries one page of a listing shows, and the links to the pages around it.
//!
//! A page is at most `n` entries in a row of the default order (directories first,
//! then by name). It is asked for by the position it starts after (a [`Cursor`], or
//! none for the first page), and its links name positions the same way:
//!
//! * **next**: after the page's last entry, when entries follow it;
//! * **previous**: the first page when this page starts within the first `n` entries,
//!   otherwise after the entry `n + 1` places before this page's first, so that walking
//!   back retraces the pages walked forward. None on the first page.
//!
//! A page size of 0 shows no entries and links nowhere (a count only): its next page
//! would be itself.
//!
//! [`Cursor`]: crate::semantics::listing::Cursor

use crate::engine::listing::entries::Kind;

/// Where a link to another page of the listing points.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum PageLink {
    /// The first page (no cursor).
    First,
    /// The page after the entry `name` of `kind`.
    After(Kind, Vec<u8>),
}

/// The entries one page shows, before they are `stat`ed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Window {
    /// The page's entries, in the default order.
    pub(crate) names: Vec<(Kind, Vec<u8>)>,
    /// How many entries come before the page's first (its 0-based position).
    pub(crate) first: usize,
    /// The entry the page starts after (`None` for the first page): the cursor that
    /// asks for this page again.
    pub(crate) after: Option<(Kind, Vec<u8>)>,
    /// How many entries the directory has that would be listed.
    pub(crate) total: usize,
    /// The previous page, if any (see the module docs).
    pub(crate) previous: Option<PageLink>,
    /// The next page, if any.
    pub(crate) next: Option<PageLink>,
}

impl Window {
    /// The window of `names` at `first` of `total`, after the entry `after`, for pages
    /// of `n`. `before` gives the entry `n + 1` places before `first` (asked only when
    /// `first > n`).
    pub(crate) fn new(
        names: Vec<(Kind, Vec<u8>)>,
        first: usize,
        after: Option<(Kind, Vec<u8>)>,
        total: usize,
        n: usize,
        before: impl FnOnce() -> Option<(Kind, Vec<u8>)>,
    ) -> Window {
        let previous = if n == 0 || first == 0 {
            None
        } else if first <= n {
            Some(PageLink::First)
        } else {
            before().map(|(kind, name)| PageLink::After(kind, name))
        };
        let next = match names.last() {
            Some((kind, name)) if first + names.len() < total => {
                Some(PageLink::After(*kind, name.clone()))
            }
            _ => None,
        };
        Window {
            names,
            first,
            after,
            total,
            previous,
            next,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str) -> (Kind, Vec<u8>) {
        (Kind::File, name.as_bytes().to_vec())
    }

    fn after(name: &str) -> Option<PageLink> {
        Some(PageLink::After(Kind::File, name.as_bytes().to_vec()))
    }

    #[test]
    fn links_go_forward_from_the_last_entry_and_back_by_a_page() {
        let unused = || panic!("not asked for");
        // The first page of three: no previous.
        let w = Window::new(vec![file("a"), file("b")], 0, None, 6, 2, unused);
        assert_eq!((w.previous, w.next), (None, after("b")));
        // The second: back to the first.
        let w = Window::new(vec![file("c"), file("d")], 2, Some(file("b")), 6, 2, unused);
        assert_eq!((w.previous, w.next), (Some(PageLink::First), after("d")));
        // The last: back to the page after "b", the entry three places before "e".
        let w = Window::new(vec![file("e"), file("f")], 4, Some(file("d")), 6, 2, || {
            Some(file("b"))
        });
        assert_eq!((w.previous, w.next), (after("b"), None));
        // A page starting within the first n entries goes back to the first page.
        let w = Window::new(vec![file("b"), file("c")], 1, Some(file("a")), 6, 2, unused);
        assert_eq!(w.previous, Some(PageLink::First));
        // Past the end: empty, and back to the last n entries.
        let w = Window::new(vec![], 6, Some(file("f")), 6, 2, || Some(file("d")));
        assert_eq!((w.previous, w.next), (after("d"), None));
        // Everything on one page: no links.
        let w = Window::new(vec![file("a")], 0, None, 1, 2, unused);
        assert_eq!((w.previous, w.next), (None, None));
        // Pages of 0: no links, ever.
        let w = Window::new(vec![], 3, Some(file("c")), 6, 0, unused);
        assert_eq!((w.previous, w.next), (None, None));
    }
}
